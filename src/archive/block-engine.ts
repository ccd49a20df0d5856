import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startWorker } from './start-worker.js';
import { BackendError } from '../backends/errors.js';
import { BlockCodec, blockKey, type Compression } from './block-codec.js';
import type { ChunkSizes } from './chunker.js';
import type { BlockType } from './format.js';
import type { SmallFileReply } from './block-worker.js';

/**
 * The CPU work of storing blocks: naming (keyed hash) and sealing (compress
 * + encrypt). A block is hashed first; the writer then decides, after asking
 * the archive, whether to seal it or drop it. The worker engine keeps the
 * plaintext in the worker between the two steps, so the main thread only
 * reads and chunks.
 */
export interface BlockEngine {
  /** True when `hash` copies the plaintext before it returns: the caller may then reuse its buffer. */
  readonly copiesInput: boolean;
  hash(type: BlockType, plaintext: Uint8Array): Promise<HeldBlock>;
  seal(block: HeldBlock): Promise<Uint8Array>;
  drop(block: HeldBlock): void;
  /**
   * Reads, chunks and names a whole file off the main thread, window by
   * window (the next window is read when the consumer asks for it), or
   * null when this engine cannot. `size` (from lstat) lets a small file be read without a window.
   */
  readFile: ((path: Buffer, size?: number) => AsyncGenerator<FileWindow>) | null;
  /**
   * Reads, chunks and names a batch of small files (each at most
   * SMALL_FILE_BYTES by lstat's `size`) off the main thread in one round
   * trip, or null when this engine cannot. A file that holds more than its
   * `size` comes back `grew` (read it with `readFile`).
   */
  readSmallFiles: ((files: SmallFile[]) => Promise<SmallFileRead[]>) | null;
  /** Windows of big files that a worker had read before they were asked for (block-worker.ts, readAhead). */
  readonly windowsReadAhead?: number;
  close(): Promise<void>;
}

export interface SmallFile {
  path: Buffer;
  size: number;
}

/** One file of `readSmallFiles`: its chunks, named and held, and the bytes read; or `grew`; or why it could not be read. */
export type SmallFileRead = FileWindow | { grew: true } | { error: string };

/** The data chunks of one window of a file, named and held, and the bytes read. */
export interface FileWindow {
  blocks: HeldBlock[];
  bytes: number;
}

export interface HeldBlock {
  key: string;
  size: number;
}

export interface EngineOptions {
  hashKey: Buffer;
  encryptionKey: Buffer;
  compression: Compression;
  level: number;
  /**
   * Worker threads; 0 works in this thread. Default CAIRN_SEAL_WORKERS, else
   * one less than the number of CPUs (at least 1, at most 4): the main thread
   * (walk, lstat, the archive's index, puts) keeps a core busy itself, and on
   * 2 cores a second worker bought no speed for 40 MiB more (bench/NOTES.md).
   */
  workers?: number;
  /** For reading files in the workers: the chunker's seed and sizes. */
  chunker?: { seed: Buffer; sizes: ChunkSizes };
  /**
   * Whether a worker reads a big file's next window before it is asked for
   * (block-worker.ts, readAhead): for a snapshot that finds most files in
   * its file cache, whose worker otherwise waits on the walking main thread.
   * Not for one that reads every file: there the worker is the bottleneck,
   * and a window read ahead only held back the batches of small files and
   * raised the first snapshot's peak (bench/NOTES.md, "Eighteenth pass").
   */
  readAhead?: boolean;
}

/** How many worker threads `makeEngine` gives an engine with these options (0: it works in this thread). */
export function engineWorkers(options: { workers?: number }): number {
  const fromEnv = process.env.CAIRN_SEAL_WORKERS;
  const workers = options.workers ?? (fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Math.max(1, Math.min(4, availableParallelism() - 1)));
  return Number.isInteger(workers) && workers > 0 ? workers : 0;
}

export function makeEngine(options: EngineOptions): BlockEngine {
  const workers = engineWorkers(options);
  return workers === 0 ? new InlineEngine(options) : new WorkerEngine(options, workers);
}

interface InlineHeld extends HeldBlock {
  type: BlockType;
  plaintext: Uint8Array;
}

export class InlineEngine implements BlockEngine {
  readonly copiesInput = false;
  private readonly codec: BlockCodec;

  constructor(private readonly options: EngineOptions) {
    this.codec = new BlockCodec(options.encryptionKey, options.compression, options.level);
  }

  async hash(type: BlockType, plaintext: Uint8Array): Promise<HeldBlock> {
    const held: InlineHeld = { key: blockKey(this.options.hashKey, type, plaintext), size: plaintext.length, type, plaintext };
    return held;
  }

  async seal(block: HeldBlock): Promise<Uint8Array> {
    const held = block as InlineHeld;
    return this.codec.seal(held.key, held.type, held.plaintext);
  }

  drop(): void {}

  readonly readFile = null;
  readonly readSmallFiles = null;

  async close(): Promise<void> {}
}

interface WorkerHeld extends HeldBlock {
  id: number;
  worker: number;
}

/**
 * Blocks up to this size (directory and index blocks, mostly) are named and
 * sealed in this thread: a round trip to a worker costs more than the work,
 * and the tree walk waits for each directory's key before the next.
 */
const INLINE_BELOW = 64 * 1024;

type Reply = {
  id: number; key?: string; sealed?: Uint8Array[]; error?: string; recycle?: Uint8Array[];
  chunks?: Array<[id: number, key: string, size: number]>; bytes?: number; done?: boolean; ahead?: boolean;
  files?: SmallFileReply[];
};

/** Seals asked of a worker at once go in one message, up to this many plaintext bytes (bigger blocks go one by one, not held back by others). */
const SEAL_BATCH_BYTES = 1024 * 1024;

/** Seals asked of one worker and not sent yet. */
interface SealQueue {
  blocks: Array<{ held: WorkerHeld; resolve(sealed: Uint8Array): void; reject(err: unknown): void }>;
  bytes: number;
  scheduled: boolean;
}

const SMALLEST_CLASS = 64 * 1024;
const KEEP_PER_CLASS = 16;

class WorkerEngine implements BlockEngine {
  readonly copiesInput = true;
  windowsReadAhead = 0;
  private readonly workers: Array<Worker | null> = [];
  private closed = false;
  private readonly waiting = new Map<number, { resolve(value: Reply): void; reject(err: Error): void }>();
  private readonly load: number[] = [];
  private nextId = 1;
  private next = 0;
  private readonly files: number[] = [];
  private readonly sealing: SealQueue[] = [];
  /**
   * Plaintext buffers come back from the workers once sealed or dropped and
   * are used again: copying into memory already touched is several times
   * cheaper than into fresh pages. Kept by power-of-two size class.
   */
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly inline: InlineEngine;
  private readonly inlineHeld = new WeakSet<HeldBlock>();
  /** Set when a worker dies. */
  private failure: BackendError | null = null;

  constructor(private readonly options: EngineOptions, count: number) {
    this.inline = new InlineEngine(options);
    this.readFile = options.chunker === undefined ? null : (path, size) => this.readFileInWorker(path, size);
    this.readSmallFiles = options.chunker === undefined ? null : (files) => this.readSmallFilesInWorker(files);
    for (let i = 0; i < count; i += 1) {
      this.workers.push(null);
      this.load.push(0);
      this.files.push(0);
      this.sealing.push({ blocks: [], bytes: 0, scheduled: false });
    }
  }

  /**
   * Worker `i`, started when first needed: a snapshot that finds every file
   * unchanged never needs one, and a worker's start costs 0.1-0.2 s of CPU
   * and 10 MiB.
   */
  private worker(i: number): Worker {
    const started = this.workers[i];
    if (started !== null && started !== undefined) return started;
    if (this.closed) throw new BackendError('internal', 'the block engine is closed');
    const options = this.options;
    const worker = startWorker('block-worker.js', {
      hashKey: options.hashKey, encryptionKey: options.encryptionKey, compression: options.compression, level: options.level,
      chunkerSeed: options.chunker?.seed, chunkSizes: options.chunker?.sizes, readAhead: options.readAhead === true,
    });
    worker.on('message', (reply: Reply) => {
      if (reply.recycle !== undefined) for (const plaintext of reply.recycle) this.recycle(plaintext.buffer as ArrayBuffer);
      if (reply.id === 0) return;
      const waiter = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (reply.error !== undefined && reply.chunks === undefined && reply.done === true) waiter?.reject(new Error(reply.error));
      else if (reply.error !== undefined) waiter?.reject(new BackendError('internal', `block worker: ${reply.error}`));
      else waiter?.resolve(reply);
    });
    worker.on('error', (err) => this.fail(new BackendError('internal', `block worker failed: ${err.message}`)));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new BackendError('internal', `block worker exited (${code})`));
    });
    this.workers[i] = worker;
    return worker;
  }

  /** A worker died: what it was asked fails, and so does everything asked from now on (a dead worker answers none). */
  private fail(err: BackendError): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  private ask(worker: number, message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.failure !== null) throw this.failure;
      const target = this.worker(worker);
      this.waiting.set(message.id as number, { resolve, reject });
      target.postMessage(message, transfer);
    });
  }

  async hash(type: BlockType, plaintext: Uint8Array): Promise<HeldBlock> {
    if (plaintext.length < INLINE_BELOW) {
      // A copy: the caller may reuse its buffer once this returns.
      const held = await this.inline.hash(type, Buffer.from(plaintext));
      this.inlineHeld.add(held);
      return held;
    }
    const id = this.nextId;
    this.nextId += 1;
    // The plaintext is held by the worker until sealed or dropped: spread blocks by bytes held.
    let worker = this.next;
    for (let i = 0; i < this.workers.length; i += 1) if ((this.load[i] as number) < (this.load[worker] as number)) worker = i;
    this.next = (this.next + 1) % this.workers.length;
    this.load[worker] = (this.load[worker] as number) + plaintext.length;
    // A buffer of its own, moved to the worker without another copy.
    const buffer = this.take(plaintext.length);
    const copy = new Uint8Array(buffer, 0, plaintext.length);
    copy.set(plaintext);
    const reply = await this.ask(worker, { op: 'hash', id, type, plaintext: copy }, [buffer]);
    const held: WorkerHeld = { key: reply.key as string, size: plaintext.length, id, worker };
    return held;
  }

  async seal(block: HeldBlock): Promise<Uint8Array> {
    if (this.inlineHeld.has(block)) return this.inline.seal(block);
    const held = block as WorkerHeld;
    try {
      return await new Promise<Uint8Array>((resolve, reject) => {
        const queue = this.sealing[held.worker] as SealQueue;
        queue.blocks.push({ held, resolve, reject });
        queue.bytes += held.size;
        if (queue.bytes >= SEAL_BATCH_BYTES) this.sendSeals(held.worker);
        else if (!queue.scheduled) {
          queue.scheduled = true;
          queueMicrotask(() => this.sendSeals(held.worker));
        }
      });
    } finally {
      this.load[held.worker] = (this.load[held.worker] as number) - held.size;
    }
  }

  /**
   * Sends the seals asked of a worker so far as one message: the block
   * writer asks for a batch's seals one after the other in one go, and one
   * message each (and one reply each) was a tenth of both threads' work on
   * small files (bench/NOTES.md, "Fifteenth pass").
   */
  private sendSeals(worker: number): void {
    const queue = this.sealing[worker] as SealQueue;
    const blocks = queue.blocks;
    queue.blocks = [];
    queue.bytes = 0;
    queue.scheduled = false;
    if (blocks.length === 0) return;
    // Held ids are the worker's own (unique per worker); the request gets an id of its own.
    const id = this.nextId;
    this.nextId += 1;
    this.ask(worker, { op: 'seal', id, held: blocks.map((b) => b.held.id) }).then((reply) => {
      const sealed = reply.sealed ?? [];
      blocks.forEach((b, i) => {
        const out = sealed[i];
        if (out === undefined) b.reject(new BackendError('internal', `block worker: no sealed block ${b.held.key}`));
        else b.resolve(out);
      });
    }, (err: unknown) => {
      for (const b of blocks) b.reject(err);
    });
  }

  drop(block: HeldBlock): void {
    if (this.inlineHeld.has(block) || this.closed) return;
    const held = block as WorkerHeld;
    this.load[held.worker] = (this.load[held.worker] as number) - held.size;
    this.worker(held.worker).postMessage({ op: 'drop', id: 0, held: held.id });
  }

  readonly readFile: ((path: Buffer, size?: number) => AsyncGenerator<FileWindow>) | null;

  /** See BlockEngine.readFile: a file is read by one worker, which keeps its chunks until sealed or dropped. */
  private async *readFileInWorker(path: Buffer, size?: number): AsyncGenerator<FileWindow> {
    const worker = this.readingWorker();
    this.files[worker] = (this.files[worker] as number) + 1;
    const fileId = this.nextId;
    this.nextId += 1;
    let done = false;
    // As text (one character per byte): a Buffer is cloned with its whole backing store, which for a
    // path cut from Node's pool is 8 KiB copied and allocated again in the worker for every file.
    const name = path.toString('latin1');
    try {
      let op = 'file-open';
      while (!done) {
        const id = this.nextId;
        this.nextId += 1;
        const reply = await this.ask(worker, { op, id, fileId, path: name, size });
        op = 'file-next';
        done = reply.done === true;
        if (reply.ahead === true) this.windowsReadAhead += 1;
        const blocks = (reply.chunks ?? []).map(([heldId, key, size]): WorkerHeld => ({ id: heldId, key, size, worker }));
        for (const b of blocks) this.load[worker] = (this.load[worker] as number) + b.size;
        yield { blocks, bytes: reply.bytes ?? 0 };
      }
    } finally {
      this.files[worker] = (this.files[worker] as number) - 1;
      if (!done) this.worker(worker).postMessage({ op: 'file-close', id: 0, fileId });
    }
  }

  readonly readSmallFiles: ((files: SmallFile[]) => Promise<SmallFileRead[]>) | null;

  /** The worker to read the next file or batch: fewest files being read, then fewest bytes held (the worker that holds a chunk also seals it). */
  private readingWorker(): number {
    let worker = 0;
    for (let i = 1; i < this.workers.length; i += 1) {
      const files = (this.files[i] as number) - (this.files[worker] as number);
      if (files < 0 || (files === 0 && (this.load[i] as number) < (this.load[worker] as number))) worker = i;
    }
    return worker;
  }

  /** See BlockEngine.readSmallFiles: the batch goes to one worker, which keeps the chunks until sealed or dropped. */
  private async readSmallFilesInWorker(files: SmallFile[]): Promise<SmallFileRead[]> {
    const worker = this.readingWorker();
    this.files[worker] = (this.files[worker] as number) + files.length;
    try {
      const id = this.nextId;
      this.nextId += 1;
      // Paths as text, one character per byte (see readFileInWorker).
      const reply = await this.ask(worker, { op: 'small-files', id, paths: files.map((f) => f.path.toString('latin1')), sizes: files.map((f) => f.size) });
      return (reply.files ?? []).map((file): SmallFileRead => {
        if (!('chunks' in file)) return file;
        const blocks = file.chunks.map(([heldId, key, size]): WorkerHeld => ({ id: heldId, key, size, worker }));
        for (const b of blocks) this.load[worker] = (this.load[worker] as number) + b.size;
        return { blocks, bytes: file.bytes };
      });
    } finally {
      this.files[worker] = (this.files[worker] as number) - files.length;
    }
  }

  private take(size: number): ArrayBuffer {
    let cls = SMALLEST_CLASS;
    while (cls < size) cls *= 2;
    return this.free.get(cls)?.pop() ?? new ArrayBuffer(cls);
  }

  private recycle(buffer: ArrayBuffer): void {
    const list = this.free.get(buffer.byteLength) ?? [];
    if (list.length < KEEP_PER_CLASS) list.push(buffer);
    this.free.set(buffer.byteLength, list);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w?.terminate()));
  }
}
