import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackendError } from '../backends/errors.js';
import { BlockCodec, blockKey, type Compression } from './block-codec.js';
import type { BlockType } from './format.js';

/**
 * The CPU work of storing blocks: naming (keyed hash) and sealing (compress
 * + encrypt). A block is hashed first; the writer then decides, after asking
 * the archive, whether to seal it or drop it. The worker engine keeps the
 * plaintext in the worker between the two steps, so the main thread only
 * reads and chunks.
 */
export interface BlockEngine {
  hash(type: BlockType, plaintext: Uint8Array): Promise<HeldBlock>;
  seal(block: HeldBlock): Promise<Uint8Array>;
  drop(block: HeldBlock): void;
  close(): Promise<void>;
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
  /** Worker threads; 0 works in this thread. Default CAIRN_SEAL_WORKERS or the number of CPUs (at most 4). */
  workers?: number;
}

export function makeEngine(options: EngineOptions): BlockEngine {
  const fromEnv = process.env.CAIRN_SEAL_WORKERS;
  const workers = options.workers ?? (fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Math.min(4, availableParallelism()));
  if (!Number.isInteger(workers) || workers <= 0) return new InlineEngine(options);
  return new WorkerEngine(options, workers);
}

interface InlineHeld extends HeldBlock {
  type: BlockType;
  plaintext: Uint8Array;
}

export class InlineEngine implements BlockEngine {
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

  async close(): Promise<void> {}
}

interface WorkerHeld extends HeldBlock {
  id: number;
  worker: number;
}

type Reply = { id: number; key?: string; sealed?: Uint8Array; error?: string };

class WorkerEngine implements BlockEngine {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, { resolve(value: Reply): void; reject(err: Error): void }>();
  private readonly load: number[] = [];
  private nextId = 1;
  private next = 0;

  constructor(options: EngineOptions, count: number) {
    const url = new URL('./block-worker.js', import.meta.url);
    for (let i = 0; i < count; i += 1) {
      const worker = new Worker(url, {
        workerData: { hashKey: options.hashKey, encryptionKey: options.encryptionKey, compression: options.compression, level: options.level },
      });
      worker.on('message', (reply: Reply) => {
        const waiter = this.waiting.get(reply.id);
        this.waiting.delete(reply.id);
        if (reply.error !== undefined) waiter?.reject(new BackendError('internal', `block worker: ${reply.error}`));
        else waiter?.resolve(reply);
      });
      worker.on('error', (err) => {
        for (const w of this.waiting.values()) w.reject(new BackendError('internal', `block worker failed: ${err.message}`));
        this.waiting.clear();
      });
      this.workers.push(worker);
      this.load.push(0);
    }
  }

  private ask(worker: number, message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiting.set(message.id as number, { resolve, reject });
      (this.workers[worker] as Worker).postMessage(message, transfer);
    });
  }

  async hash(type: BlockType, plaintext: Uint8Array): Promise<HeldBlock> {
    const id = this.nextId;
    this.nextId += 1;
    // The plaintext is held by the worker until sealed or dropped: spread blocks by bytes held.
    let worker = this.next;
    for (let i = 0; i < this.workers.length; i += 1) if ((this.load[i] as number) < (this.load[worker] as number)) worker = i;
    this.next = (this.next + 1) % this.workers.length;
    this.load[worker] = (this.load[worker] as number) + plaintext.length;
    const copy = new Uint8Array(plaintext);
    const reply = await this.ask(worker, { op: 'hash', id, type, plaintext: copy }, [copy.buffer]);
    const held: WorkerHeld = { key: reply.key as string, size: plaintext.length, id, worker };
    return held;
  }

  async seal(block: HeldBlock): Promise<Uint8Array> {
    const held = block as WorkerHeld;
    try {
      const reply = await this.ask(held.worker, { op: 'seal', id: held.id });
      return reply.sealed as Uint8Array;
    } finally {
      this.load[held.worker] = (this.load[held.worker] as number) - held.size;
    }
  }

  drop(block: HeldBlock): void {
    const held = block as WorkerHeld;
    this.load[held.worker] = (this.load[held.worker] as number) - held.size;
    (this.workers[held.worker] as Worker).postMessage({ op: 'drop', id: held.id });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
