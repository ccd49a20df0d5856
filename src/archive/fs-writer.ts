import { Worker } from 'node:worker_threads';

/** Owner (when restoring as root), mode (not for symlinks) and times of a restored entry. */
export interface FsMeta {
  uid?: number;
  gid?: number;
  mode?: number;
  atime: number;
  mtime: number;
}

/**
 * Paths (any bytes) travel as latin1 strings, one character per byte: a
 * small Buffer is a view of Node's shared 8 KiB pool, and structured clone
 * copies the whole pool for each (`toWire`/`fromWire`).
 */
export type WirePath = string;

export const toWire = (path: Uint8Array): WirePath => Buffer.from(path.buffer, path.byteOffset, path.byteLength).toString('latin1');
export const fromWire = (path: WirePath): Buffer => Buffer.from(path, 'latin1');

export type FsOp =
  | { op: 'mkdir'; path: WirePath }
  | { op: 'open'; file: number; path: WirePath }
  | { op: 'write'; file: number; data: Uint8Array; position: number }
  | { op: 'close'; file: number; path: WirePath; size: number; meta: FsMeta }
  | { op: 'abort'; file: number }
  | { op: 'symlink'; target: WirePath; path: WirePath; meta: FsMeta }
  | { op: 'link'; existing: WirePath; path: WirePath }
  | { op: 'meta'; path: WirePath; meta: FsMeta };

export interface FsReply {
  /** Files closed (and their metadata set). */
  done: number[];
  /** Files that failed, and why (closed; no more of their ops run). */
  failed: Array<[file: number, message: string]>;
  /** Metadata that could not be set, by path. */
  warnings: Array<[path: WirePath, message: string]>;
  /** File bytes written in this batch. */
  bytes: number;
  /** A directory, link or symlink that could not be made: the restore stops. */
  fatal?: string;
  synced?: number;
}

/** Batches at most this many ops, and file data up to MAX_QUEUED_BYTES is sent but not yet written. */
const BATCH_OPS = 256;
const MAX_QUEUED_BYTES = 32 * 1024 * 1024;

/**
 * A restore's file-system calls, made on a thread of their own (issue 8: the
 * restore's single thread spent about 0.7 s of 2.4 s in mkdir, open, write,
 * chmod, lchown and utimes, next to reading and opening blocks). Ops run in
 * the order they are sent, in batches of one turn of the event loop; file
 * data moves without a copy when the block owns its buffer.
 */
export class FsWriter {
  private readonly worker: Worker;
  private queue: FsOp[] = [];
  private transfer: ArrayBuffer[] = [];
  private scheduled = false;
  private queuedBytes = 0;
  private readonly roomWaiters: Array<() => void> = [];
  private readonly closing = new Map<number, { resolve(): void; reject(err: Error): void }>();
  private readonly failedFiles = new Map<number, Error>();
  private readonly syncs = new Map<number, () => void>();
  private nextFile = 1;
  private nextSync = 1;
  /** The first op that could not be done, when it was not a file's own. */
  failure: Error | null = null;

  constructor(private readonly onWarning: (path: Uint8Array, message: string) => void) {
    this.worker = new Worker(new URL('./fs-writer-worker.js', import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: 8 } });
    this.worker.on('message', (reply: FsReply) => this.answer(reply));
    this.worker.on('error', (err) => this.fail(new Error(`restore writer failed: ${err.message}`)));
  }

  mkdir(path: Uint8Array): void {
    this.send({ op: 'mkdir', path: toWire(path) });
  }

  symlink(target: Uint8Array, path: Uint8Array, meta: FsMeta): void {
    this.send({ op: 'symlink', target: toWire(target), path: toWire(path), meta });
  }

  link(existing: Uint8Array, path: Uint8Array): void {
    this.send({ op: 'link', existing: toWire(existing), path: toWire(path) });
  }

  meta(path: Uint8Array, meta: FsMeta): void {
    this.send({ op: 'meta', path: toWire(path), meta });
  }

  /** Starts a new file; its blocks follow with `write`, then `close` (or `abort`). */
  open(path: Uint8Array): number {
    const file = this.nextFile;
    this.nextFile += 1;
    this.send({ op: 'open', file, path: toWire(path) });
    return file;
  }

  /**
   * Queues a block of a file, waiting while too much file data is queued.
   * Takes the block: when it owns its buffer, that buffer moves to the
   * writer's thread and reads as empty here from then on (at once, or at the
   * end of this turn), so read its length before.
   */
  async write(file: number, data: Uint8Array, position: number): Promise<void> {
    while (this.queuedBytes > MAX_QUEUED_BYTES && this.failure === null) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    if (this.failure !== null) throw this.failure;
    const failed = this.failedFiles.get(file);
    if (failed !== undefined) throw failed;
    this.queuedBytes += data.byteLength;
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !(data.buffer instanceof SharedArrayBuffer);
    this.send({ op: 'write', file, data, position }, own ? data.buffer as ArrayBuffer : undefined);
  }

  /** Closes a file, sets its length (when it ends in a hole) and metadata; resolves once done. */
  closeFile(file: number, path: Uint8Array, size: number, meta: FsMeta): Promise<void> {
    const failed = this.failedFiles.get(file);
    if (failed !== undefined) {
      this.abort(file);
      return Promise.reject(failed);
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.closing.set(file, { resolve, reject });
      this.send({ op: 'close', file, path: toWire(path), size, meta });
    });
  }

  /** Gives up a file (closes it; what was written stays, as when a write fails). */
  abort(file: number): void {
    this.failedFiles.delete(file);
    this.send({ op: 'abort', file });
  }

  /** Resolves once every op sent so far is done. */
  sync(): Promise<void> {
    const id = this.nextSync;
    this.nextSync += 1;
    const synced = new Promise<void>((resolve) => this.syncs.set(id, resolve));
    this.flush(id);
    return synced;
  }

  /** Ends the writer's thread (after `sync`: ops still queued are dropped). */
  async close(): Promise<void> {
    await this.worker.terminate();
  }

  private send(op: FsOp, transfer?: ArrayBuffer): void {
    this.queue.push(op);
    if (transfer !== undefined) this.transfer.push(transfer);
    if (this.queue.length >= BATCH_OPS) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(sync?: number): void {
    this.scheduled = false;
    if (this.queue.length === 0 && sync === undefined) return;
    const batch: { ops: FsOp[]; sync?: number } = { ops: this.queue };
    if (sync !== undefined) batch.sync = sync;
    this.worker.postMessage(batch, this.transfer);
    this.queue = [];
    this.transfer = [];
  }

  private answer(reply: FsReply): void {
    for (const [path, message] of reply.warnings) this.onWarning(fromWire(path), message);
    for (const file of reply.done) this.settle(file, null);
    for (const [file, message] of reply.failed) this.settle(file, new Error(message));
    if (reply.fatal !== undefined) this.fail(new Error(reply.fatal));
    this.queuedBytes -= reply.bytes;
    while (this.queuedBytes <= MAX_QUEUED_BYTES && this.roomWaiters.length > 0) (this.roomWaiters.shift() as () => void)();
    if (reply.synced !== undefined) {
      this.syncs.get(reply.synced)?.();
      this.syncs.delete(reply.synced);
    }
  }

  private settle(file: number, err: Error | null): void {
    const waiter = this.closing.get(file);
    this.closing.delete(file);
    if (waiter === undefined) {
      // Failed before its close was asked for: closeFile answers it.
      if (err !== null) this.failedFiles.set(file, err);
      return;
    }
    if (err === null) waiter.resolve();
    else waiter.reject(err);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.closing.values()) w.reject(err);
    this.closing.clear();
    for (const resolve of this.syncs.values()) resolve();
    this.syncs.clear();
    while (this.roomWaiters.length > 0) (this.roomWaiters.shift() as () => void)();
  }
}
