import { close, closeSync, open, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Chunker, gearTable, type ChunkSizes } from './chunker.js';
import { BlockCodec, blockKey, blockKeysOf, type Compression } from './block-codec.js';
import type { BlockType } from './format.js';
import { readInPool, readWithoutWaiting } from './read-without-waiting.js';
import { SMALL_FILE_BYTES } from './small-file.js';
import { optionalNativeFunction } from '../optional-native.js';

/**
 * A worker thread of block-engine.ts: `hash` names a block and keeps it;
 * `seal` compresses and encrypts kept blocks and sends them back
 * (transferred), several in one reply; `drop` forgets one.
 */
const data = workerData as {
  hashKey: Uint8Array; encryptionKey: Uint8Array; compression: Compression; level: number;
  chunkerSeed?: Uint8Array; chunkSizes?: ChunkSizes; readAhead?: boolean;
};
const hashKey = Buffer.from(data.hashKey);
const codec = new BlockCodec(Buffer.from(data.encryptionKey), data.compression, data.level);
/** Blocks kept until sealed or dropped; `own` when the plaintext has a buffer of its own (which then goes back to be used again). */
const held = new Map<number, { key: string; type: BlockType; plaintext: Uint8Array; own: boolean; window?: Buffer }>();
const gear = data.chunkerSeed !== undefined ? gearTable(Buffer.from(data.chunkerSeed)) : null;
const READ_SIZE = 4 * 1024 * 1024;
const DATA: BlockType = 1;
/**
 * Files being read: the descriptor, the chunker, the undecided tail of the
 * last window, where the next read starts, whether and how far the kernel
 * was asked to read ahead (`adviseAhead`), and the size lstat gave (when
 * given).
 */
interface ReadFile {
  fd: number; chunker: Chunker; rest: Buffer; window: Buffer | null; small: boolean; position: number; advising: boolean; advised: number; size: number;
}
const files = new Map<number, ReadFile>();
let nextHeld = -1;
/** Cuts small files, each whole (`split` with `final` keeps no state between calls). */
const smallChunker = gear !== null && data.chunkSizes !== undefined ? new Chunker(gear, data.chunkSizes) : null;

/**
 * Window buffers are used again once nothing refers to them (the chunks cut
 * from a window are views of it, kept until sealed or dropped; the file
 * keeps its undecided tail until the next window copies it). Fresh buffers
 * cost page faults and garbage collection; reused ones cost neither.
 */
const WINDOW = READ_SIZE + (data.chunkSizes?.max ?? 0);
const pool: Buffer[] = [];
/**
 * Windows kept for the next file. With fewer, nearly every window of a big
 * file was a fresh one (112 of 8 MiB for the 950 MB bench tree), and the
 * dropped ones waited for a full collection of this thread: up to 140 MiB.
 */
const SPARE_WINDOWS = 4;
const refs = new Map<Buffer, number>();

function takeWindow(): Buffer {
  const buffer = pool.pop() ?? Buffer.allocUnsafeSlow(WINDOW);
  poolLow = Math.min(poolLow, pool.length);
  discarded.delete(buffer);
  refs.set(buffer, 1);
  return buffer;
}

/**
 * Spare windows nobody took for a while give their pages back
 * (native/malloc-trim's discard: madvise, the buffer stays valid): once the
 * big files are read, four spare windows of 8 MiB sat resident while small
 * files filled one, and were a snapshot's peak memory at its end
 * (bench/NOTES.md, "Fifteenth pass"). Taken again, a window costs its page
 * faults, not an allocation. `poolLow` is the fewest spares since the last
 * look: the pool is a stack, so those at its bottom were not taken meanwhile.
 */
const discard = optionalNativeFunction<(buffer: Uint8Array) => number>('cairn-malloc-trim', 'discard');
const DISCARD_AFTER_MS = 250;
const discarded = new Set<Buffer>();
let poolLow = 0;
if (discard !== null) {
  setInterval(() => {
    for (let i = 0; i < Math.min(poolLow, pool.length); i += 1) {
      const spare = pool[i] as Buffer;
      if (discarded.has(spare)) continue;
      discard(spare);
      discarded.add(spare);
    }
    poolLow = pool.length;
  }, DISCARD_AFTER_MS).unref();
}

function releaseWindow(buffer: Buffer | null | undefined): void {
  if (buffer === null || buffer === undefined) return;
  const left = (refs.get(buffer) ?? 1) - 1;
  if (left > 0) {
    refs.set(buffer, left);
    return;
  }
  refs.delete(buffer);
  if (pool.length < SPARE_WINDOWS) pool.push(buffer);
}

type Message =
  | { op: 'hash'; id: number; type: BlockType; plaintext: Uint8Array }
  | { op: 'seal'; id: number; held: number[] }
  | { op: 'drop'; id: number; held: number }
  | { op: 'file-open'; id: number; fileId: number; path: string; size?: number }
  | { op: 'file-next'; id: number; fileId: number }
  | { op: 'file-close'; id: number; fileId: number }
  | { op: 'small-files'; id: number; paths: string[]; sizes: number[] };

/**
 * Windows of big files are read asynchronously (libuv's thread pool): while
 * one waits on the disk, chunks of others are cut, named and sealed. Small
 * files are opened and closed synchronously, and read so when cached: a
 * thread-pool round trip costs more than the call itself on a warm or fast
 * disk (three per file, each waking a pool thread and then this one: on the
 * bench tree that was 0.4 s of CPU; bench/NOTES.md, "Fourth pass"); one not
 * cached yet is read in the pool (read-without-waiting.ts). Reads are at
 * explicit positions (`position`). Each file has at most one read
 * outstanding (the main thread asks for its next window only after the
 * reply, and a window read ahead is awaited before another is read), so a
 * file's own state is never touched by two reads at once; what files share
 * (the packed window, the pool) is claimed synchronously before a read
 * starts.
 *
 * readWindow answers with the next window of a file (the one read ahead, or
 * one read now), cut and its chunks named and kept; the reply lists them.
 */
async function readWindow(id: number, fileId: number): Promise<void> {
  let prepared: Prepared;
  let early: Promise<Prepared> | undefined;
  try {
    early = ahead.get(fileId);
    ahead.delete(fileId);
    prepared = await (early ?? nextWindow(fileId));
  } catch (err) {
    fileFailed(id, fileId, err as Error);
    return;
  }
  sendWindow(id, prepared, early !== undefined);
  if (!prepared.final) readAhead(fileId);
}

/** A window of a file read, cut and named: its chunks ([held id, key, size]), the bytes read, and whether it was the file's last. */
interface Prepared {
  chunks: Array<[number, string, number]>;
  bytes: number;
  final: boolean;
}

/** Reads, cuts and names the next window of a big file (a failed read throws; the caller reports it). */
async function nextWindow(fileId: number): Promise<Prepared> {
  const file = files.get(fileId);
  if (file === undefined) throw new Error(`no file ${fileId} open`);
  const buffer = takeWindow();
  file.rest.copy(buffer, 0);
  releaseWindow(file.window);
  file.window = buffer;
  adviseAhead(file);
  const started = performance.now();
  const bytes = await readInPool(file.fd, buffer, file.rest.length, READ_SIZE, file.position);
  file.position += bytes;
  // Waited on the disk: from now on the kernel reads this file ahead.
  if (!file.advising && performance.now() - started > SLOW_READ_MS) {
    file.advising = true;
    file.advised = file.position;
  }
  return cutWindow(fileId, buffer, buffer, bytes, READ_SIZE, false);
}

/**
 * A big file whose reads wait on the disk is read from it ahead of its
 * windows: the kernel is asked (native/readahead's willNeed) to read the
 * next ADVISE_AHEAD bytes into the page cache in the background,
 * ADVISE_STEP at a time. Its own read-ahead, 128 KiB at a time behind each
 * read, left every 4 MiB read of an uncached log waiting 9-17 ms (the full
 * tree's incremental snapshot spent 0.5 s so in bench/peers, where the
 * peers' archives had pushed the tree out of the host's cache;
 * bench/NOTES.md, "Twentieth pass"). A file read at the page cache's or a
 * fast disk's speed is not advised: the first read slower than
 * SLOW_READ_MS starts it.
 */
const ADVISE_AHEAD = 64 * 1024 * 1024;
const ADVISE_STEP = 16 * 1024 * 1024;
const SLOW_READ_MS = 3;
const willNeed = optionalNativeFunction<(fd: number, position: number, length: number) => number>('cairn-readahead', 'willNeed');

function adviseAhead(file: ReadFile): void {
  if (willNeed === null || !file.advising) return;
  const until = Math.min(file.position + ADVISE_AHEAD, file.size);
  while (file.advised < until) {
    // A file system that refuses (or a kernel without it): read as the kernel's own read-ahead allows.
    if (willNeed(file.fd, file.advised, ADVISE_STEP) !== 0) {
      file.advised = Infinity;
      return;
    }
    file.advised += ADVISE_STEP;
  }
}

/**
 * The next window of a big file is read, cut and named as soon as the
 * last one's reply is sent, not when the main thread asks for it: the main
 * thread asks between its walk's slices, and while it walked, the full
 * tree's incremental snapshot had this thread wait 220 ms for the 304 MB
 * log's first 30 windows (bench/NOTES.md, "Eighteenth pass"). Only when
 * the engine asks for it (EngineOptions.readAhead: a snapshot with file
 * cache rows), one file at a time, and only into a spare window (one
 * already in memory): a window read ahead is not counted by the main
 * thread until it asks for it.
 */
const ahead = new Map<number, Promise<Prepared>>();

function readAhead(fileId: number): void {
  const file = files.get(fileId);
  if (data.readAhead !== true || file === undefined || file.small || ahead.size > 0 || pool.length === 0) return;
  const prepared = nextWindow(fileId);
  prepared.catch(() => undefined);
  ahead.set(fileId, prepared);
}

/** `early`: the window was read ahead (counted by the engine). */
function sendWindow(id: number, prepared: Prepared, early = false): void {
  parentPort?.postMessage({ id, chunks: prepared.chunks, bytes: prepared.bytes, done: prepared.final, ...(early ? { ahead: true } : {}) });
}

/** Forgets the chunks of a window read ahead that the main thread will not ask for. */
function dropPrepared(prepared: Prepared): void {
  for (const [heldId] of prepared.chunks) {
    const block = held.get(heldId);
    held.delete(heldId);
    releaseWindow(block?.window);
  }
}

/**
 * Files expected to be small are read into a shared window, each at its own
 * place claimed by the size lstat gave (plus one byte, to see the end); their
 * chunks are views of it (the window goes back to the pool once all are
 * sealed or dropped). Neither a window per file nor a fresh buffer per chunk:
 * the allocator's churn of mid-sized buffers is what made the worker slow
 * and the process's memory grow. A file that turns out bigger than its
 * claim keeps what was read as its undecided tail and goes on in windows.
 */
let packed: Buffer | null = null;
let packedAt = 0;

/** Claims `claim` bytes of the shared window for one small file's read, held until its chunks hold the window themselves. */
function claimPlace(claim: number): { window: Buffer; at: number } {
  if (packed === null || WINDOW - packedAt < claim) {
    releaseWindow(packed);
    packed = takeWindow();
    packedAt = 0;
  }
  const window = packed;
  const at = packedAt;
  packedAt += claim;
  refs.set(window, (refs.get(window) ?? 0) + 1);
  return { window, at };
}

async function readSmall(id: number, fileId: number, size: number): Promise<void> {
  const file = files.get(fileId);
  if (file === undefined) throw new Error(`no file ${fileId} open`);
  const claim = size + 1;
  const { window, at } = claimPlace(claim);
  try {
    let bytes: number;
    try {
      // Not cached yet (a cold disk): read in the pool while this thread seals other blocks.
      bytes = await readWithoutWaiting(file.fd, window, at, claim);
      file.position = bytes;
    } catch (err) {
      fileFailed(id, fileId, err as Error);
      return;
    }
    if (bytes === claim) {
      file.rest = Buffer.from(window.subarray(at, at + bytes));
      parentPort?.postMessage({ id, chunks: [], bytes, done: false });
      return;
    }
    sendWindow(id, cutWindow(fileId, window, window.subarray(at, at + bytes), bytes, claim, true));
  } finally {
    releaseWindow(window);
  }
}

/** A small file of a batch: its bytes and chunks ([held id, key, size]), `grew` when it held more than its lstat size, or why it could not be read. */
export type SmallFileReply = { bytes: number; chunks: Array<[number, string, number]> } | { grew: true } | { error: string };

/**
 * Reads a batch of small files, each whole into its place in the shared
 * window (as readSmall), names their chunks and keeps them: one message and
 * one reply for the batch, where one file each cost a round trip of its own
 * and a file's state on both threads. Files in the page cache are read at
 * once; those not cached yet are read in libuv's pool, all of the batch's at
 * the same time, and the reply waits for the last.
 */
async function readSmallFiles(id: number, paths: string[], sizes: number[]): Promise<void> {
  if (smallChunker === null) throw new Error('this worker was not given the chunker');
  const replies: SmallFileReply[] = [];
  const reading: Array<Promise<void>> = [];
  for (let i = 0; i < paths.length; i += 1) {
    const claim = (sizes[i] as number) + 1;
    let fd: number;
    try {
      // The path's bytes, sent as latin1 text (block-engine.ts).
      fd = openSync(Buffer.from(paths[i] as string, 'latin1'), 'r');
    } catch (err) {
      replies.push({ error: (err as Error).message });
      continue;
    }
    const { window, at } = claimPlace(claim);
    const slot = replies.length;
    replies.push({ grew: true });
    const cut = (bytes: number): void => {
      if (bytes === claim) return;
      const chunks: Array<[number, string, number]> = [];
      for (const chunk of smallChunker.split(window.subarray(at, at + bytes), true).chunks) {
        const heldId = nextHeld;
        nextHeld -= 1;
        const key = blockKey(hashKey, DATA, chunk);
        held.set(heldId, { key, type: DATA, plaintext: chunk, own: false, window });
        refs.set(window, (refs.get(window) ?? 0) + 1);
        chunks.push([heldId, key, chunk.length]);
      }
      replies[slot] = { bytes, chunks };
    };
    reading.push(readWithoutWaiting(fd, window, at, claim).then(cut, (err: Error) => {
      replies[slot] = { error: err.message };
    }).finally(() => {
      closeSync(fd);
      releaseWindow(window);
    }));
  }
  await Promise.all(reading);
  parentPort?.postMessage({ id, files: replies });
}

function closeFile(fileId: number): void {
  const file = files.get(fileId);
  if (file === undefined) return;
  files.delete(fileId);
  if (file.small) closeSync(file.fd);
  else close(file.fd, () => undefined);
  releaseWindow(file.window);
}

function fileFailed(id: number, fileId: number, err: Error): void {
  closeFile(fileId);
  parentPort?.postMessage({ id, error: err.message, done: true });
}

/** Cuts what was read into `view` of `buffer` (after the file's undecided tail), names the chunks and keeps them. */
function cutWindow(fileId: number, buffer: Buffer, view: Buffer, bytes: number, asked: number, shared: boolean): Prepared {
  const file = files.get(fileId);
  if (file === undefined) throw new Error(`no file ${fileId} open`);
  // A short read of a regular file is its end: no second round trip to read nothing.
  const final = bytes < asked;
  const filled = file.rest.length + bytes;
  const split = file.chunker.split(view.subarray(0, filled), final);
  file.rest = split.rest;
  // The last window of a big file, mostly empty, is not kept alive by its
  // chunks: they are copied out and the window goes back to the pool at once.
  const copyOut = !shared && filled < WINDOW / 4;
  const chunks: Array<[number, string, number]> = [];
  const parts = copyOut ? split.chunks.map((part) => Buffer.from(part)) : split.chunks;
  const keys = blockKeysOf(hashKey, DATA, parts);
  for (const [i, chunk] of parts.entries()) {
    const key = keys[i] as string;
    const heldId = nextHeld;
    nextHeld -= 1;
    if (copyOut) {
      held.set(heldId, { key, type: DATA, plaintext: chunk, own: false });
    } else {
      held.set(heldId, { key, type: DATA, plaintext: chunk, own: false, window: buffer });
      refs.set(buffer, (refs.get(buffer) ?? 0) + 1);
    }
    chunks.push([heldId, key, chunk.length]);
  }
  if (final) closeFile(fileId);
  return { chunks, bytes, final };
}

/** Opens a file and reads its first window (or its place in the shared window). */
async function openFile(msg: { id: number; fileId: number; path: string; size?: number }): Promise<void> {
  // The path's bytes, sent as latin1 text (block-engine.ts).
  const file = Buffer.from(msg.path, 'latin1');
  if (gear === null || data.chunkSizes === undefined) throw new Error('this worker was not given the chunker');
  const sizes = data.chunkSizes;
  const small = msg.size !== undefined && msg.size <= SMALL_FILE_BYTES;
  let fd: number;
  try {
    fd = small ? openSync(file, 'r') : await new Promise<number>((resolve, reject) => open(file, 'r', (err, opened) => (err !== null ? reject(err) : resolve(opened))));
  } catch (err) {
    parentPort?.postMessage({ id: msg.id, error: (err as Error).message, done: true });
    return;
  }
  files.set(msg.fileId, { fd, chunker: new Chunker(gear, sizes), rest: Buffer.alloc(0), window: null, small, position: 0, advising: false, advised: 0, size: msg.size ?? Infinity });
  if (small) await readSmall(msg.id, msg.fileId, msg.size as number);
  else await readWindow(msg.id, msg.fileId);
}

function failed(id: number): (err: Error) => void {
  return (err) => parentPort?.postMessage({ id, error: err.message });
}

parentPort?.on('message', (msg: Message) => {
  try {
    if (msg.op === 'file-open') {
      openFile(msg).catch(failed(msg.id));
    } else if (msg.op === 'file-next') {
      readWindow(msg.id, msg.fileId).catch(failed(msg.id));
    } else if (msg.op === 'small-files') {
      readSmallFiles(msg.id, msg.paths, msg.sizes).catch(failed(msg.id));
    } else if (msg.op === 'file-close') {
      const early = ahead.get(msg.fileId);
      ahead.delete(msg.fileId);
      // A window being read ahead: the file is closed once its read is done (its descriptor is in use until then).
      if (early === undefined) closeFile(msg.fileId);
      else void early.then(dropPrepared, () => undefined).finally(() => closeFile(msg.fileId));
    } else if (msg.op === 'hash') {
      const key = blockKey(hashKey, msg.type, msg.plaintext);
      held.set(msg.id, { key, type: msg.type, plaintext: msg.plaintext, own: true });
      parentPort?.postMessage({ id: msg.id, key });
    } else if (msg.op === 'seal') {
      const sealed: Uint8Array[] = [];
      const recycle: Uint8Array[] = [];
      const transfer: ArrayBuffer[] = [];
      for (const heldId of msg.held) {
        const block = held.get(heldId);
        held.delete(heldId);
        if (block === undefined) throw new Error(`no block ${heldId} held`);
        const out = codec.seal(block.key, block.type, block.plaintext);
        releaseWindow(block.window);
        const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
        const moved = own ? out : new Uint8Array(out);
        sealed.push(moved);
        transfer.push(moved.buffer as ArrayBuffer);
        // A plaintext with a buffer of its own goes back too, to be used again (block-engine.ts).
        if (block.own) {
          recycle.push(block.plaintext);
          transfer.push(block.plaintext.buffer as ArrayBuffer);
        }
      }
      parentPort?.postMessage({ id: msg.id, sealed, recycle }, transfer);
    } else {
      const block = held.get(msg.held);
      held.delete(msg.held);
      releaseWindow(block?.window);
      if (block?.own === true) parentPort?.postMessage({ id: 0, recycle: [block.plaintext] }, [block.plaintext.buffer as ArrayBuffer]);
    }
  } catch (err) {
    parentPort?.postMessage({ id: msg.id, error: (err as Error).message });
  }
});
