import { closeSync, openSync, readSync } from 'node:fs';
import { optionalNativeFunction } from '../optional-native.js';

/**
 * native/readahead (Linux): opens a file, and unless its first byte is in the
 * page cache already, asks the kernel to read it in the background
 * (posix_fadvise WILLNEED). 1: it was not cached (reading was asked for),
 * 0: it was, 2: the kernel or file system cannot tell (reading was asked
 * for anyway), -1: it could not be opened.
 */
export type NativePrefetch = (file: Buffer) => number;
export const nativePrefetch = optionalNativeFunction<NativePrefetch>('cairn-readahead', 'prefetch');

/**
 * native/readahead (Linux): prefetch for several files in one call, their
 * reads submitted together through io_uring where it can be used (one
 * file at a time elsewhere). `paths`: each file's path followed by a zero
 * byte; `sizes`: their sizes; each file's answer (as prefetch's) goes into
 * `answers`. Returns how many files were answered.
 */
export type NativePrefetchMany = (paths: Buffer, sizes: Uint32Array, answers: Int8Array) => number;
export const nativePrefetchMany = optionalNativeFunction<NativePrefetchMany>('cairn-readahead', 'prefetchMany');

/**
 * native/readahead (Linux): pread of only what the page cache holds
 * (RWF_NOWAIT): the bytes read, -2 when none at `position` is cached, -1
 * on any other failure (read the usual way then: it says why).
 */
export type NativeReadNowait = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => number;
export const nativeReadNowait = process.env.CAIRN_NO_READ_NOWAIT === '1' ? null : optionalNativeFunction<NativeReadNowait>('cairn-readahead', 'readNowait');

/** Bytes read of each file: the kernel's readahead brings in the rest of a small file. */
const PREFETCH_BYTES = 16 * 1024;
/** A read slower than this waited on the disk. */
const COLD_US = 150;
/** The walk runs at most 256 leaves ahead of the reading (tree-writer.ts): older queued files are read already. */
const MAX_BACKLOG = 256;
/** How long one slice of prefetching may hold this thread. */
const SLICE_MS = 2;

/**
 * Judges from recent reads whether the files being read are cached: cold
 * while at least one in four of the last 32 was not; a file found uncached
 * makes it cold at once. While warm, `wants` lets one file in 32 through,
 * to notice a colder part of the tree. ColdPrefetch and the listing thread's
 * read-ahead (listing-worker.ts) go by it.
 */
export class ColdJudge {
  cold = true;
  private skipped = 0;
  private recent = 0;
  private slow = 0;

  /** Whether the next file should be tried: always while cold, one in 32 while warm. */
  wants(): boolean {
    if (this.cold) return true;
    this.skipped += 1;
    return this.skipped % 32 === 0;
  }

  /** Counts a file tried; true when this judged the cache warm. */
  note(uncached: boolean): boolean {
    this.recent += 1;
    if (uncached) this.slow += 1;
    if (!this.cold && uncached) this.cold = true;
    if (this.recent < 32) return false;
    this.cold = this.slow * 4 >= this.recent;
    this.recent = 0;
    this.slow = 0;
    return !this.cold;
  }
}

/**
 * Brings small files into the page cache shortly before a block worker reads
 * them: the worker reads small files one after another, synchronously (fast
 * on a warm cache, bench/NOTES.md), and on a cold one it waits on the disk
 * for each.
 *
 * With native/readahead, the kernel is asked to read each file in the
 * background, which returns at once: the disk then has the reads of many
 * files in flight. Reading the 33,200 small files of the 952 MB bench tree
 * cold took 3.9 s one after the other; asked for ahead this way during the
 * walk, 0.8 s were left to wait for. Without it (other systems), the start of
 * each file is read here, so that two reads wait on the disk at once
 * instead of one (1.8 s instead of 2.7 s).
 *
 * It costs a few system calls a file, which buy nothing on a warm cache: it
 * turns itself off when the files it sees are cached already, and then only
 * samples one file in 32 to notice a colder part of the tree.
 */
export class ColdPrefetch {
  private readonly queue: Buffer[] = [];
  private next = 0;
  private draining = false;
  private readonly judge = new ColdJudge();
  private readonly scratch = Buffer.allocUnsafe(PREFETCH_BYTES);
  /** Files read ahead so far. */
  read = 0;

  /**
   * `coldMicros`: a read that took this long waited on the disk (where the
   * kernel cannot tell). `native`: native/readahead's prefetch, null to read
   * the start of each file instead.
   */
  constructor(private readonly coldMicros = COLD_US, private readonly native: NativePrefetch | null = nativePrefetch) {}

  /** Resolves once everything queued has been read (or dropped). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.draining) setImmediate(check);
        else resolve();
      };
      check();
    });
  }

  /** Queues a file to be read ahead (only when the cache looks cold). */
  add(file: Buffer): void {
    if (!this.judge.wants()) return;
    this.queue.push(file);
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    const end = performance.now() + SLICE_MS;
    while (this.next < this.queue.length && performance.now() < end) {
      const file = this.queue[this.next] as Buffer;
      this.next += 1;
      this.read += 1;
      this.note(this.fetch(file));
    }
    if (this.next < this.queue.length) {
      // Files read are let go of; a backlog longer than the walk runs ahead of the worker is
      // files the worker has already read: skipped.
      this.queue.splice(0, Math.max(this.next, this.queue.length - MAX_BACKLOG));
      this.next = 0;
      setImmediate(() => this.drain());
      return;
    }
    this.queue.length = 0;
    this.next = 0;
    this.draining = false;
  }

  /** Brings `file` in; true when it was not cached (false too when it cannot be opened: the snapshot will say why). */
  private fetch(file: Buffer): boolean {
    const answer = this.native?.(file) ?? 2;
    // Where the kernel cannot tell (tmpfs, old kernels), timing a read of the start tells.
    return answer === 2 ? this.readStart(file) >= this.coldMicros : answer === 1;
  }

  /** Microseconds to read the start of `file` (0 when it cannot be read). */
  private readStart(file: Buffer): number {
    const started = performance.now();
    try {
      const fd = openSync(file, 'r');
      try {
        readSync(fd, this.scratch, 0, PREFETCH_BYTES, 0);
      } finally {
        closeSync(fd);
      }
    } catch {
      return 0;
    }
    return (performance.now() - started) * 1000;
  }

  /** Cold while at least one file in four of the last 32 was not cached (ColdJudge). */
  private note(uncached: boolean): void {
    if (this.judge.note(uncached)) this.queue.length = this.next; // what is queued is probably warm too
  }
}
