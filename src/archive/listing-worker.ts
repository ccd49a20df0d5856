import { lstatSync, readdirSync, type BigIntStats } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ColdJudge, nativePrefetch, nativePrefetchMany } from './cold-prefetch.js';
import { optionalNativeFunction } from '../optional-native.js';
import { MAX_AHEAD_DIRS, MAX_AHEAD_ENTRIES, NOT_WAITING, packListing, PREFETCHED, putStat, RESUME_DIRS, STAT_FIELDS, STOP, TAKEN, WAKE_AT, type ListedDirectory, type ListingBatch } from './listing.js';
import { SMALL_FILE_BYTES } from './small-file.js';
import { deferred } from './worker-prestart.js';

/**
 * The listing thread (listing-thread.ts): walks the snapshot's trees in the
 * walk's own order (depth first, names sorted as bytes) and sends each
 * directory's names and lstats, so that the walk on the main thread finds
 * them ready instead of waiting on readdir and lstat. It runs at most
 * MAX_AHEAD_DIRS directories or MAX_AHEAD_ENTRIES names ahead of what the
 * walk has taken (listing.ts), and waits (Atomics.wait) for the walk to
 * catch up.
 */
export interface ListingWorkerData {
  /** The trees, as absolute paths (their bytes as latin1 text), in the snapshot's order. */
  roots: string[];
  /** Absolute paths the snapshot leaves out (utf8 text, as tree-writer.ts compares them). */
  exclude: string[];
  /** TAKEN, STOP and PREFETCHED (listing.ts). */
  shared: SharedArrayBuffer;
  /**
   * Whether the snapshot will read every file (no file cache rows): small
   * files are then read ahead as they are listed (see `prefetch`).
   */
  prefetch: boolean;
}

/** Listings sent in one message at most, and the longest a listing waits to be sent. */
const BATCH = 32;
const BATCH_MS = 2;
/**
 * A listing slower than this waited on the disk. On the bench trees: warm,
 * a median of 22-33 us, 90 % under 51-89 us; with the page cache dropped, a
 * median of 99-106 us (measured for the warm-up walk this thread replaced).
 */
const COLD_US = 70;
/** Listings judged before the walk is told whether the tree is cold. */
const JUDGE = 64;

const SLASH = Buffer.from('/');
/** A worker started before the snapshot knew its trees (worker-prestart.ts) gets its data in the first message, its only one. */
const data = deferred(workerData)
  ? await new Promise<ListingWorkerData>((resolve) => parentPort?.once('message', resolve))
  : workerData as ListingWorkerData;
const { roots, exclude, shared, prefetch: prefetchWanted } = data;
const words = new Int32Array(shared);
const excluded = new Set(exclude);

let seq = 0;
/** Listings sent and not yet taken: [seq, names]. */
const ahead: Array<[number, number]> = [];
let entriesAhead = 0;
let batch: ListedDirectory[] = [];
let transfer: ArrayBuffer[] = [];
let lastSent = performance.now();
let judged = 0;
let slow = 0;
let cold: boolean | undefined;

function send(done: boolean): void {
  flushPrefetch();
  const message: ListingBatch = { listings: batch, done };
  if (cold !== undefined) {
    message.cold = cold;
    cold = undefined;
  }
  parentPort?.postMessage(message, transfer);
  batch = [];
  transfer = [];
  lastSent = performance.now();
}

/** Waits while the walk is too far behind; false once told to stop. */
function waitForRoom(): boolean {
  let told = false;
  for (;;) {
    if (Atomics.load(words, STOP) !== 0) return false;
    const taken = Atomics.load(words, TAKEN);
    while (ahead.length > 0 && (ahead[0] as [number, number])[0] <= taken) entriesAhead -= (ahead.shift() as [number, number])[1];
    if (ahead.length < MAX_AHEAD_DIRS && entriesAhead < MAX_AHEAD_ENTRIES) return true;
    // Everything goes before the wait: the walk tells from what it has that the thread waits (listing-thread.ts).
    if (!told) flushPrefetch();
    if (!told && batch.length > 0) send(false);
    told = true;
    // Woken once RESUME_DIRS directories are taken, not for each one (a wake and a wait per listing cost both
    // threads a switch). TAKEN is read again after WAKE_AT is set: a walk that took them meanwhile may not have
    // seen it, and the wait returns at once when TAKEN has moved since.
    const wakeAt = (ahead[Math.min(ahead.length, RESUME_DIRS) - 1] as [number, number])[0];
    Atomics.store(words, WAKE_AT, wakeAt);
    const now = Atomics.load(words, TAKEN);
    if (now < wakeAt) Atomics.wait(words, TAKEN, now, 100);
    Atomics.store(words, WAKE_AT, NOT_WAITING);
  }
}

/**
 * Small files of a snapshot that reads them all (a first one, or one without
 * a file cache): the kernel is asked to read each into the page cache as it
 * is listed (native/readahead, which cold-prefetch.ts describes), far ahead
 * of the walk, instead of the main thread asking just ahead of the reading.
 * Once the files it sees are cached already it stops, sampling one in 32.
 *
 * Files are asked for PREFETCH_BATCH at a time (prefetchMany), and those
 * gathered so far whenever listings are sent or the thread is about to wait:
 * their reads reach the disk in one submission, merged where the files lie
 * side by side. One call a file cost this thread 1.05-1.08 s of CPU for the
 * bench tree's 33,200 small files and the disk 37,000 reads; a call a
 * directory (9 files on average), 0.44-0.45 s and 7,000-8,000; 64 files a
 * call, 0.30 s and 5,000 (bench/NOTES.md, "Twenty-first pass").
 */
const prefetchJudge = new ColdJudge();
const PREFETCH_BATCH = 64;
const prefetchPaths: Buffer[] = [];
const prefetchSizes: number[] = [];

function prefetch(file: Buffer, st: { size: bigint; isFile(): boolean }): void {
  if (!prefetchWanted || nativePrefetch === null || !st.isFile() || st.size === 0n || st.size > BigInt(SMALL_FILE_BYTES)) return;
  if (!prefetchJudge.wants()) return;
  if (nativePrefetchMany === null) {
    notePrefetched(nativePrefetch(file));
    return;
  }
  prefetchPaths.push(file, ZERO);
  prefetchSizes.push(Number(st.size));
  if (prefetchSizes.length >= PREFETCH_BATCH) flushPrefetch();
}

/** Asks for the files `prefetch` gathered. */
function flushPrefetch(): void {
  if (nativePrefetchMany === null || prefetchSizes.length === 0) return;
  const answers = new Int8Array(prefetchSizes.length);
  nativePrefetchMany(Buffer.concat(prefetchPaths), Uint32Array.from(prefetchSizes), answers);
  prefetchPaths.length = 0;
  prefetchSizes.length = 0;
  for (const answer of answers) notePrefetched(answer);
}

/** Counts a file read ahead (native/readahead's answer: 1 or 2 when reading was asked for). */
function notePrefetched(answer: number): void {
  const asked = answer === 1 || answer === 2;
  if (asked) Atomics.add(words, PREFETCHED, 1);
  prefetchJudge.note(asked);
}

function judge(micros: number): void {
  if (judged >= JUDGE) return;
  judged += 1;
  if (micros > COLD_US) slow += 1;
  if (judged === JUDGE) {
    cold = slow * 4 >= JUDGE;
    if (cold) startWarming();
  }
}

/**
 * A snapshot that reads only changed files (one with file cache rows) waits
 * on this thread's walk of a cold tree: one directory block or inode table
 * read at a time. native/list-directory's warmDirectories lists the
 * subdirectories each listing finds on four background threads, so that
 * the disk has several reads in flight and the walk finds most of them
 * cached (bench/NOTES.md, "Seventeenth pass"). It starts once the first
 * listings are judged cold (warmed listings would look warm), with the
 * directories the walk has found and not listed; not for a snapshot that
 * reads every file (its walk runs far ahead of the reading anyway).
 * CAIRN_NO_DIRECTORY_WARM=1 turns it off.
 */
type NativeWarm = (paths?: Buffer) => void;
const nativeWarm = process.env.CAIRN_NO_DIRECTORY_WARM === '1' || prefetchWanted ? null : optionalNativeFunction<NativeWarm>('cairn-list-directory', 'warmDirectories');
let warming = false;
const ZERO = Buffer.alloc(1);
/** Directories found and not listed yet, the next one last (the walk's depth-first stack). */
const walkStack: Buffer[] = [];

function startWarming(): void {
  if (nativeWarm === null) return;
  warming = true;
  // The walk's next directory last: the threads take the newest first.
  nativeWarm(Buffer.concat(walkStack.flatMap((dir) => [dir, ZERO])));
}

/** Hands `subdirs` to the warming threads, the first one last: it is taken first (they take the newest first). */
function warm(subdirs: Buffer[]): void {
  if (!warming || subdirs.length === 0) return;
  const parts: Buffer[] = [];
  for (let i = subdirs.length - 1; i >= 0; i -= 1) parts.push(subdirs[i] as Buffer, ZERO);
  (nativeWarm as NativeWarm)(Buffer.concat(parts));
}

/** Drops the directories still waiting to be warmed: the walk is over. */
function stopWarming(): void {
  if (!warming) return;
  warming = false;
  (nativeWarm as NativeWarm)();
}

/**
 * native/list-directory's call: the names sorted and their lstat in one go
 * (fstatat on the directory's descriptor), or null for a directory it could
 * not list (then listed here the usual way, for the error). With
 * `CAIRN_NO_NATIVE_LIST=1`, or where it is not built, every directory is
 * listed with readdirSync and lstatSync.
 */
type NativeList = (dir: Buffer) => [names: Buffer, stats: BigInt64Array, failed: number[]] | null;
const nativeList = process.env.CAIRN_NO_NATIVE_LIST === '1' ? null : optionalNativeFunction<NativeList>('cairn-list-directory', 'listDirectory');

/** `list` with native/list-directory: how many names it found, or null when it could not list `dir` (listHere then does, for the error). */
function listNatively(dir: Buffer, listed: ListedDirectory, subdirs: Buffer[]): number | null {
  if (nativeList === null) return null;
  const started = performance.now();
  const native = nativeList(dir);
  if (native === null) return null;
  const [packed, stats, failed] = native;
  // The call includes the lstats, about 4 us a name when warm: what is left is the readdir's own time (the
  // first 64 directories of the full bench tree, less 4 us a name: warm at most 3 us for 90 %, cold at least 122).
  judge((performance.now() - started) * 1000 - 4 * (stats.length / STAT_FIELDS));
  for (const i of failed) {
    // Gone or unreadable since readdir: lstat again, for its own error (or its stat, if it is back).
    const full = Buffer.concat([dir, SLASH, nameAt(packed, i)]);
    try {
      putStat(stats, i * STAT_FIELDS, lstatSync(full, { bigint: true }));
    } catch (err) {
      listed.failed.push([i, (err as Error).message, (err as NodeJS.ErrnoException).code]);
    }
  }
  const failedAt = new Set(listed.failed.map(([i]) => i));
  let index = 0;
  for (let start = 0; start < packed.length; index += 1) {
    const end = packed.indexOf(0, start);
    if (!failedAt.has(index)) {
      const mode = stats[index * STAT_FIELDS] as bigint;
      const type = mode & S_IFMT;
      if (type === S_IFDIR || (prefetchWanted && type === S_IFREG)) {
        const full = Buffer.concat([dir, SLASH, packed.subarray(start, end)]);
        if (type === S_IFDIR) {
          if (!excluded.has(full.toString())) subdirs.push(full);
        } else {
          prefetch(full, { size: stats[index * STAT_FIELDS + 3] as bigint, isFile: () => true });
        }
      }
    }
    start = end + 1;
  }
  listed.names = new Uint8Array(packed.buffer, packed.byteOffset, packed.length);
  listed.stats = stats;
  transfer.push(packed.buffer as ArrayBuffer, stats.buffer as ArrayBuffer);
  return index;
}

/** The i-th name of a packed listing. */
function nameAt(packed: Buffer, i: number): Buffer {
  let start = 0;
  for (let k = 0; k < i; k += 1) start = packed.indexOf(0, start) + 1;
  return packed.subarray(start, packed.indexOf(0, start));
}

const S_IFMT = 0o170000n;
const S_IFDIR = 0o040000n;
const S_IFREG = 0o100000n;

/** Lists `dir` and queues it; returns its subdirectories, in order. */
function list(dir: Buffer): Buffer[] {
  const listed: ListedDirectory = { seq, dir: dir.toString('latin1'), names: new Uint8Array(0), stats: new BigInt64Array(0), failed: [] };
  seq += 1;
  const subdirs: Buffer[] = [];
  const count = listNatively(dir, listed, subdirs) ?? listHere(dir, listed, subdirs);
  warm(subdirs);
  batch.push(listed);
  ahead.push([listed.seq, count]);
  entriesAhead += count;
  if (batch.length >= BATCH || performance.now() - lastSent >= BATCH_MS) send(false);
  return subdirs;
}

/** `list` with readdirSync and lstatSync; returns how many names it found. */
function listHere(dir: Buffer, listed: ListedDirectory, subdirs: Buffer[]): number {
  let count = 0;
  try {
    const started = performance.now();
    const names = readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
    judge((performance.now() - started) * 1000);
    count = names.length;
    const stats = names.map((name, i): BigIntStats | Error => {
      const full = Buffer.concat([dir, SLASH, name]);
      try {
        const st = lstatSync(full, { bigint: true });
        prefetch(full, st);
        if (st.isDirectory() && !excluded.has(full.toString())) subdirs.push(full);
        return st;
      } catch (err) {
        listed.failed.push([i, (err as Error).message, (err as NodeJS.ErrnoException).code]);
        return err as Error;
      }
    });
    const raw = packListing(names, stats);
    listed.names = raw.names;
    listed.stats = raw.stats;
    transfer.push(raw.names.buffer as ArrayBuffer, raw.stats.buffer as ArrayBuffer);
  } catch (err) {
    listed.error = { message: (err as Error).message, ...((err as NodeJS.ErrnoException).code !== undefined ? { code: (err as NodeJS.ErrnoException).code } : {}) };
  }
  return count;
}

function walk(): void {
  // Depth first, in order: each directory's subdirectories go on the stack last first.
  const stack = walkStack;
  for (let i = roots.length - 1; i >= 0; i -= 1) {
    const root = Buffer.from(roots[i] as string, 'latin1');
    try {
      if (lstatSync(root).isDirectory()) stack.push(root);
    } catch {
      // the snapshot says why
    }
  }
  while (stack.length > 0) {
    if (!waitForRoom()) {
      stopWarming();
      return;
    }
    const subdirs = list(stack.pop() as Buffer);
    for (let i = subdirs.length - 1; i >= 0; i -= 1) stack.push(subdirs[i] as Buffer);
  }
  if (judged < JUDGE) cold = judged > 0 && slow * 4 >= judged;
  stopWarming();
  send(true);
}

walk();
