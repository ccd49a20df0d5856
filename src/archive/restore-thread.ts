import type { Worker } from 'node:worker_threads';
import { startOrAdoptWorker } from './worker-prestart.js';
import { BackendError, type ErrorCode } from '../backends/errors.js';
import type { RestoredMetadata } from './restore-file.js';

/** One file for the restore thread: its path (the bytes as latin1 text), its one sealed block, what the entry says. */
export interface RestoreJob {
  id: number;
  path: string;
  key: string;
  sealed: Uint8Array;
  size: number;
  meta: RestoredMetadata;
}

export interface RestoreResult {
  id: number;
  /** What could not be set: [what, message] (applyMetadata). */
  warnings: Array<[string, string]>;
  error?: { code?: ErrorCode; message: string };
}

export interface RestoreReply {
  results: RestoreResult[];
}

/**
 * Files handed to the thread and not yet written, at most: enough to keep it
 * busy between the main thread's turns (every 4 ms: its replies wait for
 * them). Full bench tree, interleaved: 32 files 5.2-6.4 s, 64 files
 * 5.39-7.08 s, 160 files 5.09-5.23 s, 320 as 160.
 */
const MAX_FILES = 160;
/** Bytes of the files (their sizes) handed to the thread and not yet written, at most (memory). */
const MAX_BYTES = 2 * 1024 * 1024;
/** Jobs sent in one message (the first ones go at once, the rest when the batch fills or at the end of the turn). */
const BATCH = 16;

/**
 * A second thread for a restore (bench/NOTES.md, "Ninth pass"): the files
 * whose content is one block are written there (opened, decrypted,
 * decompressed, written, their metadata set) while the main thread walks,
 * reads the blocks from the archive and writes the files it keeps. A
 * restore is mostly file-system calls, each on the thread that makes it,
 * so two threads making them share the work where passing blocks back and
 * forth did not. `hasRoom` says whether a file should go there: when the
 * thread is full the main thread writes the file itself, which balances the
 * two.
 */
export class RestoreThread {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, { resolve: (warnings: Array<[string, string]>) => void; reject: (err: Error) => void }>();
  private batch: RestoreJob[] = [];
  private transfer: ArrayBuffer[] = [];
  private flushQueued = false;
  private nextId = 1;
  private files = 0;
  private bytes = 0;
  private failed: Error | null = null;

  constructor(private readonly encryptionKey: Buffer) {}

  /** Whether a file of `size` bytes may go to the thread now (one always may when the thread has none). */
  hasRoom(size: number): boolean {
    return this.failed === null && this.files < MAX_FILES && (this.bytes + size <= MAX_BYTES || this.files === 0);
  }

  /** Claims room for a file whose block is being read: call `write` or `cancel` with the claim. */
  claim(size: number): { size: number } {
    this.files += 1;
    this.bytes += size;
    return { size };
  }

  /** Gives back a claim: its file is written, failed, or will not go to the thread after all. */
  cancel(claim: { size: number }): void {
    this.files -= 1;
    this.bytes -= claim.size;
  }

  /** Writes a file in the thread; resolves with the warnings of its metadata. */
  write(claim: { size: number }, job: Omit<RestoreJob, 'id' | 'sealed'>, sealed: Uint8Array): Promise<Array<[string, string]>> {
    if (this.failed !== null) {
      this.cancel(claim);
      return Promise.reject(this.failed);
    }
    const id = this.nextId;
    this.nextId += 1;
    // A copy of its own to transfer: the backend's buffer may be a view of a larger one (a record with its header,
    // a frame read from a pipe) that must stay usable here.
    const own = new Uint8Array(sealed);
    const done = new Promise<Array<[string, string]>>((resolve, reject) => {
      this.waiting.set(id, {
        resolve: (warnings) => {
          this.cancel(claim);
          resolve(warnings);
        },
        reject: (err) => {
          this.cancel(claim);
          reject(err);
        },
      });
    });
    this.batch.push({ ...job, id, sealed: own });
    this.transfer.push(own.buffer as ArrayBuffer);
    if (this.batch.length >= BATCH || this.files <= BATCH) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => this.flush());
    }
    return done;
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.batch.length === 0) return;
    const jobs = this.batch;
    const transfer = this.transfer;
    this.batch = [];
    this.transfer = [];
    this.thread().postMessage({ jobs }, transfer);
  }

  private thread(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = startOrAdoptWorker('restore-worker.js', { encryptionKey: this.encryptionKey });
    worker.on('message', (reply: RestoreReply) => {
      for (const result of reply.results) {
        const waiter = this.waiting.get(result.id);
        this.waiting.delete(result.id);
        if (waiter === undefined) continue;
        if (result.error === undefined) waiter.resolve(result.warnings);
        else waiter.reject(result.error.code !== undefined ? new BackendError(result.error.code, result.error.message) : new Error(result.error.message));
      }
    });
    worker.on('error', (err) => this.fail(new BackendError('internal', `restore thread failed: ${err.message}`)));
    worker.on('exit', (code) => {
      // Not stopped by close: later writes fail too (a dead thread answers none), those waiting at once.
      if (this.worker === worker) this.fail(new BackendError('internal', `restore thread exited (${code})${this.waiting.size > 0 ? ' with files unwritten' : ''}`));
    });
    this.worker = worker;
    return worker;
  }

  private fail(err: Error): void {
    this.failed = err;
    for (const waiter of this.waiting.values()) waiter.reject(err);
    this.waiting.clear();
  }

  /** Stops the thread (after the last reply: the caller waits for every write first). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker !== null) await worker.terminate();
  }
}
