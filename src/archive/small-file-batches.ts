import { BackendError } from '../backends/errors.js';
import type { SmallFile, SmallFileRead } from './block-engine.js';

export interface BatchLimits {
  /** Files in one batch. */
  files: number;
  /** Bytes (by lstat) in one batch; a file bigger than this goes alone. */
  bytes: number;
  /** Batches sent and not answered yet. */
  inFlight: number;
}

/**
 * 32 files or 2 MiB a batch, two batches at once: one being read while the
 * other's reply is taken in, a few MiB held in the worker's windows, as
 * when six files were read at once one by one (bench/NOTES.md, "Fifteenth pass").
 */
export const DEFAULT_BATCH_LIMITS: BatchLimits = { files: 32, bytes: 2 * 1024 * 1024, inFlight: 2 };

interface Queued {
  file: SmallFile;
  resolve(read: SmallFileRead): void;
  reject(err: unknown): void;
}

/**
 * Gathers the small files the tree walk hands over into batches for the
 * block engine (BlockEngine.readSmallFiles): one message and one reply for
 * up to `files` files, where each file cost a round trip of its own. A batch
 * goes when it is full, or once the walk's current turn of the event loop is
 * over (what it queued meanwhile goes together); at most `inFlight` at
 * once, each only when `room` says the block writer has room for its blocks.
 */
export class SmallFileBatches {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly readBatch: (files: SmallFile[]) => Promise<SmallFileRead[]>,
    private readonly room: () => Promise<void>,
    private readonly limits: BatchLimits = DEFAULT_BATCH_LIMITS,
  ) {}

  /** Reads one file with the next batch. */
  read(path: Buffer, size: number): Promise<SmallFileRead> {
    return new Promise((resolve, reject) => {
      this.queue.push({ file: { path, size }, resolve, reject });
      this.queuedBytes += size;
      if (this.queue.length >= this.limits.files || this.queuedBytes >= this.limits.bytes) {
        this.send();
      } else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.send();
        });
      }
    });
  }

  private send(): void {
    while (this.queue.length > 0 && this.inFlight < this.limits.inFlight) {
      let count = 0;
      let bytes = 0;
      while (count < this.queue.length && count < this.limits.files) {
        const size = (this.queue[count] as Queued).file.size;
        if (count > 0 && bytes + size > this.limits.bytes) break;
        bytes += size;
        count += 1;
      }
      const batch = this.queue.splice(0, count);
      this.queuedBytes -= bytes;
      this.inFlight += 1;
      void this.run(batch);
    }
  }

  private async run(batch: Queued[]): Promise<void> {
    try {
      await this.room();
      const reads = await this.readBatch(batch.map((q) => q.file));
      if (reads.length !== batch.length) throw new BackendError('internal', `a batch of ${batch.length} small files came back with ${reads.length} answers`);
      batch.forEach((q, i) => q.resolve(reads[i] as SmallFileRead));
    } catch (err) {
      for (const q of batch) q.reject(err);
    } finally {
      this.inFlight -= 1;
      this.send();
    }
  }
}
