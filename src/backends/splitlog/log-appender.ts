/**
 * Appends records to the logs, one write at a time and in order, so that
 * the written part of the logs is always a prefix of what was queued. A
 * record goes into the current log unless it would carry the log past the
 * size limit; then a new log starts (a record larger than the limit gets a
 * log of its own).
 */
import { constants, promises as fsp } from 'node:fs';
import type { Location, Position } from './metadata.js';
import { logPath } from './log-files.js';
import { syncDir } from '../fs/atomic-file.js';

const FILE_MODE = 0o600;
/** Most bytes gathered into one writev. */
const BATCH_BYTES = 8 * 1024 * 1024;

interface Pending {
  loc: Location;
  parts: Uint8Array[];
  onWritten: () => void;
  resolve(): void;
  reject(err: unknown): void;
}

export class LogAppender {
  private log: number;
  private offset: number;
  private readonly queue: Pending[] = [];
  private writing: Promise<void> | null = null;
  private readonly handles = new Map<number, fsp.FileHandle>();
  /** Logs written since the last sync. */
  private readonly unsynced = new Set<number>();
  private dirDirty = false;
  private written: Position;
  /** Set after a failed write: everything after `written` is suspect. */
  failed: Error | null = null;

  constructor(private readonly dir: string, start: Position, private readonly maxBytes: () => number) {
    this.log = start.log;
    this.offset = start.offset;
    this.written = { ...start };
  }

  /** The end of what has been written, in order (a position to index up to). */
  get writtenEnd(): Position {
    return { ...this.written };
  }

  /** Whether anything was written since the last sync. */
  get dirty(): boolean {
    return this.unsynced.size > 0 || this.dirDirty;
  }

  get busy(): boolean {
    return this.queue.length > 0 || this.writing !== null;
  }

  /** Takes the place of the next record (synchronously: callers' order is log order). */
  reserve(length: number): Location {
    if (this.offset > 0 && this.offset + length > this.maxBytes()) {
      this.log += 1;
      this.offset = 0;
    }
    const loc = { log: this.log, offset: this.offset, length };
    this.offset += length;
    return loc;
  }

  /**
   * Writes a reserved record; resolves when its bytes are in the log (not yet
   * fsynced). `onWritten` runs at the moment `writtenEnd` moves past it.
   */
  write(loc: Location, parts: Uint8Array[], onWritten: () => void): Promise<void> {
    if (this.failed !== null) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ loc, parts, onWritten, resolve, reject });
      if (this.writing === null) this.writing = this.drain();
    });
  }

  /** Resolves when the queue is empty. */
  async idle(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  /** fsyncs every log written since the last sync, and the directory when logs were created. */
  async sync(): Promise<void> {
    const logs = [...this.unsynced];
    this.unsynced.clear();
    try {
      for (const log of logs) {
        const handle = this.handles.get(log);
        if (handle !== undefined) await handle.sync();
      }
      if (this.dirDirty) {
        this.dirDirty = false;
        await syncDir(this.dir);
      }
    } catch (err) {
      for (const log of logs) this.unsynced.add(log);
      this.dirDirty = true;
      throw err;
    }
    // Logs left behind by a rollover are complete: close them.
    for (const [log, handle] of this.handles) {
      if (log < this.log && !this.unsynced.has(log)) {
        this.handles.delete(log);
        await handle.close().catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    await this.idle();
    for (const handle of this.handles.values()) await handle.close().catch(() => undefined);
    this.handles.clear();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const first = this.queue[0] as Pending;
        const batch: Pending[] = [];
        let bytes = 0;
        let end = first.loc.offset;
        for (const item of this.queue) {
          if (item.loc.log !== first.loc.log || item.loc.offset !== end || batch.length >= 500) break;
          if (batch.length > 0 && bytes + item.loc.length > BATCH_BYTES) break;
          batch.push(item);
          bytes += item.loc.length;
          end += item.loc.length;
        }
        this.queue.splice(0, batch.length);
        try {
          if (this.failed !== null) throw this.failed;
          const handle = await this.handle(first.loc.log);
          const buffers = batch.flatMap((item) => item.parts);
          let done = 0;
          while (done < bytes) {
            const { bytesWritten } = await handle.writev(skip(buffers, done), first.loc.offset + done);
            if (bytesWritten === 0) throw new Error('the log write made no progress');
            done += bytesWritten;
          }
          this.unsynced.add(first.loc.log);
          this.written = { log: first.loc.log, offset: end };
          for (const item of batch) item.onWritten();
          for (const item of batch) item.resolve();
        } catch (err) {
          this.failed ??= err instanceof Error ? err : new Error(String(err));
          for (const item of batch) item.reject(err);
        }
      }
    } finally {
      this.writing = null;
    }
  }

  private async handle(log: number): Promise<fsp.FileHandle> {
    let handle = this.handles.get(log);
    if (handle === undefined) {
      handle = await fsp.open(logPath(this.dir, log), constants.O_WRONLY | constants.O_CREAT, FILE_MODE);
      this.handles.set(log, handle);
      this.dirDirty = true;
    }
    return handle;
  }
}

/** The buffers after the first `bytes` bytes (a partial writev continues from there). */
function skip(buffers: Uint8Array[], bytes: number): Uint8Array[] {
  if (bytes === 0) return buffers;
  const out: Uint8Array[] = [];
  let left = bytes;
  for (const b of buffers) {
    if (left >= b.byteLength) {
      left -= b.byteLength;
      continue;
    }
    out.push(left > 0 ? b.subarray(left) : b);
    left = 0;
  }
  return out;
}
