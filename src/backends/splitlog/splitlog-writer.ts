/**
 * The writing side of a splitlog: the writer lock, the appender, and the
 * records written but not yet committed to the metadata (kept in order, and
 * in an overlay that reads consult first).
 *
 * Durability (issue 3): a commit fsyncs the logs, then applies the written
 * records to the metadata with the position they reach, in one transaction.
 * `flush` is a commit; commits also run every commit interval. The writer
 * lock is held from the first write until a commit finds nothing in flight,
 * so another process waits at most about one commit interval.
 */
import type { LogLevel } from '../backend.js';
import { BackendError, fsErrorToBackendError } from '../errors.js';
import { LogAppender } from './log-appender.js';
import type { IndexOp, Location, Metadata } from './metadata.js';
import { recoverTail } from './recovery.js';
import { encodeRecord, isRemoval, kindOf, type Kind, type RecordType } from './record.js';
import {
  describeHolder, newIdentity, releaseWriter, renewWriter, tryAcquireWriter, writerWantedAt,
} from './writer-lock.js';

/** How long a write waits for another process's writer lock. */
const WRITER_WAIT_MS = 60_000;
/** How often a holder looks whether another process waits for the lock. */
const HANDOVER_POLL_MS = 100;
/** After handing the lock over, how long our own writes hold back so the waiter gets it. */
const HANDOVER_BACKOFF_MS = 300;

export interface WriterHost {
  readonly meta: Metadata;
  readonly logDir: string;
  maxLogfileBytes(): number;
  commitInterval(): number;
  /** Reloads the settings from the metadata; returns whether writes are refused (write-protected). */
  reloadSettings(): boolean;
  log(level: LogLevel, text: string): void;
}

interface OverlayEntry {
  loc: Location | null;
  op: IndexOp;
}

export class SplitlogWriter {
  private appender: LogAppender | null = null;
  private readonly completed: IndexOp[] = [];
  /** By kind, then name (no key built per lookup: every put and existence check asks). */
  private readonly overlay: Record<Kind, Map<string, OverlayEntry>> = { block: new Map(), tag: new Map(), config: new Map() };
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private handoverTimer: NodeJS.Timeout | null = null;
  private acquiredAt = 0;
  /** Set while handing the lock to a waiting process: new writes wait for it. */
  private handingOver: Promise<void> | null = null;
  readonly me = newIdentity();

  constructor(private readonly host: WriterHost) {}

  /** The uncommitted state of a name: a location, null (removed), or undefined (ask the metadata). */
  lookup(kind: Kind, name: string): Location | null | undefined {
    return this.overlay[kind].get(name)?.loc;
  }

  get holdsLock(): boolean {
    return this.appender !== null;
  }

  /**
   * Appends one record (encoded here, data not copied) and returns where it
   * went. `check` runs once the writer lock is held, before anything is
   * written: returning false skips the write (e.g. the block arrived
   * meanwhile from another process). `force` writes even when write-protected (admin).
   */
  append(type: RecordType, name: string, data: Uint8Array, options: { value?: string; force?: boolean; check?: () => boolean } = {}): Promise<Location | null> {
    try {
      const head = encodeRecord(type, name, data);
      const parts = [head, data];
      const length = head.length + data.byteLength;
      // While this process holds the lock (a snapshot's puts, one after the other), a record goes to the
      // appender at once: no wait of its own for the lock, and two promises less a block.
      const appender = this.appender;
      if (this.handingOver === null && appender !== null && appender.failed === null) return this.appendTo(appender, type, name, parts, length, options);
      return this.appendParts(type, name, parts, length, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async appendParts(
    type: RecordType, name: string, parts: Uint8Array[], length: number,
    options: { value?: string; force?: boolean; check?: () => boolean },
  ): Promise<Location | null> {
    for (;;) {
      if (this.handingOver !== null) {
        await this.handingOver;
        continue;
      }
      const appender = await this.writer(options.force === true);
      if (appender !== this.appender || appender.failed !== null) continue;
      return this.appendTo(appender, type, name, parts, length, options);
    }
  }

  /** Writes a record with the lock held and `appender` current: `check` first, then its place, then its bytes. */
  private appendTo(
    appender: LogAppender, type: RecordType, name: string, parts: Uint8Array[], length: number,
    options: { value?: string; check?: () => boolean },
  ): Promise<Location | null> {
    if (options.check !== undefined && !options.check()) return Promise.resolve(null);
    const loc = appender.reserve(length);
    const op: IndexOp = { type, name, loc };
    if (options.value !== undefined) op.value = options.value;
    return appender.write(loc, parts, () => {
      this.completed.push(op);
      this.overlay[kindOf(type)].set(name, { loc: isRemoval(type) ? null : loc, op });
    }).then(() => {
      this.scheduleCommit();
      return loc;
    }, (err: unknown) => {
      throw fsErrorToBackendError(err, `writing ${name} to the log`);
    });
  }

  /** fsyncs the logs, then commits the written records to the metadata. */
  commit(): Promise<void> {
    return this.serial(() => this.commitNow());
  }

  /** Commits, then gives the writer lock back. */
  async close(): Promise<void> {
    await this.commit();
    await this.serial(async () => {
      if (this.appender !== null) await this.release();
    });
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Runs `fn` holding the writer lock, with nothing uncommitted before it and
   * no appender of ours open (reindex, compact: they read and write the logs
   * themselves).
   */
  async exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    await this.commit();
    return this.serial(async () => {
      if (this.appender !== null) await this.release();
      await this.takeLock();
      try {
        return await fn();
      } finally {
        releaseWriter(this.host.meta, this.me);
      }
    });
  }

  /** Takes the writer lock at start-up only if it is free, to index what a crashed writer left. */
  recoverIfFree(): Promise<void> {
    return this.serial(async () => {
      if (this.appender !== null || tryAcquireWriter(this.host.meta, this.me) !== null) return;
      try {
        if (!this.host.reloadSettings()) recoverTail(this.host.meta, this.host.logDir, (text) => this.host.log('warning', text));
      } finally {
        releaseWriter(this.host.meta, this.me);
      }
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async writer(force: boolean): Promise<LogAppender> {
    for (;;) {
      const appender = this.appender;
      if (appender !== null && appender.failed === null) return appender;
      await this.serial(async () => {
        if (this.appender?.failed != null) await this.commitNow();
        if (this.appender === null) await this.acquire(force);
      });
    }
  }

  private async takeLock(): Promise<void> {
    const { meta, logDir } = this.host;
    const deadline = Date.now() + WRITER_WAIT_MS;
    let delay = 5;
    for (;;) {
      let holder;
      try {
        holder = tryAcquireWriter(meta, this.me, true);
      } catch (err) {
        throw new BackendError('unavailable', `cannot take the writer lock of ${logDir}: ${(err as Error).message}`);
      }
      if (holder === null) break;
      if (Date.now() > deadline) {
        throw new BackendError('unavailable', `the splitlog ${logDir} is being written by ${describeHolder(holder)}; gave up waiting after ${WRITER_WAIT_MS / 1000} s`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 100);
    }
    this.acquiredAt = Date.now();
  }

  private async acquire(force: boolean): Promise<void> {
    const { meta, logDir } = this.host;
    await this.takeLock();
    try {
      if (this.host.reloadSettings() && !force) {
        throw new BackendError('readOnly', `the splitlog ${logDir} is write-protected (archive-admin ... write-unprotect)`);
      }
      const { append } = recoverTail(meta, logDir, (text) => this.host.log('warning', text));
      this.appender = new LogAppender(logDir, append, () => this.host.maxLogfileBytes());
      this.watchForWaiters();
    } catch (err) {
      releaseWriter(meta, this.me);
      throw err instanceof BackendError ? err : fsErrorToBackendError(err, `recovering ${logDir}`);
    }
  }

  /** While we hold the lock: when another process waits for it, commit and hand it over. */
  private watchForWaiters(): void {
    this.handoverTimer = setInterval(() => {
      if (this.appender === null || this.handingOver !== null) return;
      let wanted = 0;
      try {
        wanted = writerWantedAt(this.host.meta);
      } catch {
        return;
      }
      if (wanted <= this.acquiredAt) return;
      this.handingOver = (async () => {
        try {
          await this.serial(async () => {
            await this.appender?.idle();
            await this.commitNow();
          });
          await new Promise((resolve) => setTimeout(resolve, HANDOVER_BACKOFF_MS));
        } catch (err) {
          this.host.log('error', `commit before handing the writer lock over failed: ${(err as Error).message}`);
        } finally {
          this.handingOver = null;
        }
      })();
    }, HANDOVER_POLL_MS);
    this.handoverTimer.unref();
  }

  private async release(): Promise<void> {
    if (this.handoverTimer !== null) clearInterval(this.handoverTimer);
    this.handoverTimer = null;
    const appender = this.appender;
    this.appender = null;
    for (const names of Object.values(this.overlay)) names.clear();
    if (appender !== null) await appender.close();
    releaseWriter(this.host.meta, this.me);
  }

  private async commitNow(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const appender = this.appender;
    if (appender === null) return;
    const ops = this.completed.splice(0);
    const end = appender.writtenEnd;
    try {
      if (appender.dirty) await appender.sync();
    } catch (err) {
      this.completed.unshift(...ops);
      this.scheduleCommit();
      throw fsErrorToBackendError(err, 'flush: fsync of the log');
    }
    const { meta } = this.host;
    meta.immediate(() => {
      meta.applyAll(ops);
      if (ops.length > 0) meta.setPosition(end);
      renewWriter(meta, this.me);
    });
    for (const op of ops) {
      const names = this.overlay[kindOf(op.type)];
      if (names.get(op.name)?.op === op) names.delete(op.name);
    }
    if (appender.failed !== null || (!appender.busy && this.completed.length === 0)) {
      await this.release();
    } else {
      this.scheduleCommit();
    }
  }

  private scheduleCommit(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.commit().catch((err: unknown) => this.host.log('error', `periodic commit failed: ${(err as Error).message}`));
    }, this.host.commitInterval() * 1000);
    this.timer.unref();
  }
}
