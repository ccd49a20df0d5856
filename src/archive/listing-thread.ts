import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { nativePrefetch } from './cold-prefetch.js';
import { startOrAdoptWorker } from './worker-prestart.js';
import { decodeListing, listedEntries, MAX_AHEAD_DIRS, MAX_AHEAD_ENTRIES, NOT_WAITING, PREFETCHED, SHARED_WORDS, STOP, TAKEN, WAKE_AT, type ListedDirectory, type Listing, type ListingBatch } from './listing.js';
import type { ListingWorkerData } from './listing-worker.js';

/**
 * A thread that lists the snapshot's directories ahead of its walk
 * (bench/NOTES.md, "Tenth pass"): readdir and lstat of every directory, in
 * the walk's order, so that the main thread, which the walk, the file
 * cache, the directory blocks and the puts all share, does not wait on them
 * (on a cold disk each waits for a read). Started before the unlock, it
 * also brings the tree into the kernel's caches while the passphrase is
 * stretched.
 *
 * The walk takes listings in the thread's order, skipping those of
 * directories it leaves out; a listing it asks for that the thread has not
 * sent, when the thread has stopped or waits for room, it makes itself
 * (`take` answers null). Anything the thread cannot list it reports as the
 * walk's own readdir or lstat would.
 */
export class ListingThread {
  private readonly worker: Worker;
  private readonly words = new Int32Array(new SharedArrayBuffer(4 * SHARED_WORDS));
  private readonly received = new Map<string, ListedDirectory>();
  /** Received and not taken, in the thread's order (to let go of those the walk skipped). */
  private readonly order: ListedDirectory[] = [];
  private readonly waiters = new Map<string, (listed: ListedDirectory | null) => void>();
  private ended = false;
  /** What the thread was last told was taken (TAKEN): it runs ahead of this. */
  private taken = -1;
  /** Resolves true when the first listings waited on the disk (false when they did not, or the thread failed). */
  readonly cold: Promise<boolean>;
  /** Listings the walk took from the thread. */
  listingsTaken = 0;

  /** Whether the thread asks the kernel to read the small files it lists ahead (see the constructor). */
  readonly readsAhead: boolean;

  /** Files the thread asked the kernel to read ahead (not cached when it asked). */
  get prefetched(): number {
    return Atomics.load(this.words, PREFETCHED);
  }

  /**
   * `prefetch`: the snapshot will read every file (no file cache rows), so
   * the thread asks the kernel to read small files ahead as it lists them.
   */
  constructor(paths: string[], exclude: string[] = [], prefetch = false) {
    let judged: (cold: boolean) => void = () => undefined;
    this.cold = new Promise((resolve) => {
      judged = resolve;
    });
    Atomics.store(this.words, TAKEN, -1);
    Atomics.store(this.words, WAKE_AT, NOT_WAITING);
    this.readsAhead = prefetch && nativePrefetch !== null;
    const data: ListingWorkerData = {
      roots: paths.map((p) => Buffer.from(path.resolve(p)).toString('latin1')),
      exclude: exclude.map((p) => path.resolve(p)),
      shared: this.words.buffer as SharedArrayBuffer,
      prefetch,
    };
    this.worker = startOrAdoptWorker('listing-worker.js', data);
    this.worker.unref();
    this.worker.on('message', (batch: ListingBatch) => {
      for (const listed of batch.listings) {
        const waiter = this.waiters.get(listed.dir);
        if (waiter !== undefined) {
          this.waiters.delete(listed.dir);
          this.order.push(listed);
          waiter(listed);
        } else {
          this.received.set(listed.dir, listed);
          this.order.push(listed);
        }
      }
      if (batch.cold !== undefined) judged(batch.cold);
      if (batch.done) this.end();
      else if (this.waiters.size > 0 && this.threadWaits()) this.release();
    });
    this.worker.on('error', () => {
      judged(false);
      this.end();
    });
    this.worker.on('exit', () => {
      judged(false);
      this.end();
    });
  }

  /**
   * `dir`'s listing from the thread: null when the thread will not send it
   * (the walk lists it itself). Throws the directory's error, as readdir.
   */
  take(dir: Buffer): Promise<Listing | null> | null {
    const key = dir.toString('latin1');
    const listed = this.received.get(key);
    if (listed !== undefined) return Promise.resolve(this.use(listed));
    if (this.ended) return null;
    if (this.threadWaits()) {
      this.release();
      return null;
    }
    return new Promise<ListedDirectory | null>((resolve) => this.waiters.set(key, resolve)).then((l) => (l === null ? null : this.use(l)));
  }

  private use(listed: ListedDirectory): Listing {
    this.received.delete(listed.dir);
    // Listings before this one are of directories the walk left out: it will not ask for them.
    let i = 0;
    while (i < this.order.length && (this.order[i] as ListedDirectory).seq <= listed.seq) {
      this.received.delete((this.order[i] as ListedDirectory).dir);
      i += 1;
    }
    this.order.splice(0, i);
    this.listingsTaken += 1;
    this.tell(listed.seq);
    return decodeListing(listed);
  }

  /** Lets the thread go on past `seq` (never back). */
  private tell(seq: number): void {
    if (seq <= this.taken) return;
    this.taken = seq;
    Atomics.store(this.words, TAKEN, seq);
    // Only a thread waiting for this much room is woken (WAKE_AT): a notify for every listing taken cost the
    // main thread 30 ms of a cold incremental snapshot of the full bench tree, and the thread a wake each.
    if (seq >= Atomics.load(this.words, WAKE_AT)) Atomics.notify(this.words, TAKEN);
  }

  /**
   * Whether the thread waits for the walk: what it sent past the last
   * listing taken reaches its limits (it sends everything before it waits,
   * so what is here is all it has).
   */
  private threadWaits(): boolean {
    let dirs = 0;
    let entries = 0;
    for (let i = this.order.length - 1; i >= 0; i -= 1) {
      const listed = this.order[i] as ListedDirectory;
      if (listed.seq <= this.taken) break;
      dirs += 1;
      entries += listedEntries(listed);
    }
    return dirs >= MAX_AHEAD_DIRS || entries >= MAX_AHEAD_ENTRIES;
  }

  /**
   * The thread waits for room while the walk waits for a listing it will
   * not send (the walk left out what the thread listed): the walk lists
   * that one itself, and the thread goes on. What it sent stays here for
   * the walk.
   */
  private release(): void {
    for (const waiter of this.waiters.values()) waiter(null);
    this.waiters.clear();
    const last = this.order[this.order.length - 1];
    if (last !== undefined) this.tell(last.seq);
  }

  private end(): void {
    this.ended = true;
    for (const waiter of this.waiters.values()) waiter(null);
    this.waiters.clear();
  }

  /** Stops the thread; what it sent and was not taken is let go. */
  close(): void {
    this.end();
    this.received.clear();
    this.order.length = 0;
    Atomics.store(this.words, STOP, 1);
    Atomics.notify(this.words, TAKEN);
    void this.worker.terminate();
  }
}
