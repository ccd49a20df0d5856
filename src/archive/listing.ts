import type { BigIntStats } from 'node:fs';

/**
 * What a snapshot's walk uses of an lstat: BigIntStats has it, and so has
 * ListedStat, an lstat made by the listing thread (listing-thread.ts).
 */
export type WalkStat = Pick<BigIntStats,
  'isDirectory' | 'isFile' | 'isSymbolicLink' | 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice' | 'isSocket' |
  'mode' | 'uid' | 'gid' | 'size' | 'mtimeNs' | 'ctimeNs' | 'mtimeMs' | 'ino' | 'nlink' | 'dev' | 'rdev'>;

/** A directory's names (sorted) and each one's lstat, or the error lstat gave. */
export interface Listing {
  names: Buffer[];
  stats: Array<WalkStat | Error>;
  /** The same as the listing thread sends it, when every lstat succeeded (what the directory memo digests). */
  raw?: RawListing;
}

/** A listing's raw form: names each ended by a zero byte, STAT_FIELDS values per name. */
export interface RawListing {
  names: Uint8Array;
  stats: BigInt64Array;
}

/** The lstat fields a listing carries for each name, in this order (BigInt64Array). */
export const STAT_FIELDS = 10;

/** One directory as the listing thread sends it. */
export interface ListedDirectory {
  /** Its position in the thread's walk (0, 1, ...). */
  seq: number;
  /** The directory's path, its bytes as latin1 text. */
  dir: string;
  /** The names, each ended by a zero byte (which no name holds), sorted. */
  names: Uint8Array;
  /** STAT_FIELDS values per name (zeros where lstat failed). */
  stats: BigInt64Array;
  /** Names whose lstat failed: [index, message, code]. */
  failed: Array<[number, string, string | undefined]>;
  /** Set when the directory itself could not be listed (the walk skips it with this message). */
  error?: { message: string; code?: string };
}

/**
 * How far the listing thread runs ahead of the listings taken: it waits
 * when the directories it has sent and the walk has not taken reach
 * MAX_AHEAD_DIRS, or their names MAX_AHEAD_ENTRIES (it sends everything it
 * has first). The walk uses the same rule to tell that the thread waits.
 */
export const MAX_AHEAD_DIRS = 2048;
export const MAX_AHEAD_ENTRIES = 65_536;

/** How many names a listing holds. */
export function listedEntries(listed: ListedDirectory): number {
  return listed.stats.length / STAT_FIELDS;
}

/** A message of the listing thread. */
export interface ListingBatch {
  listings: ListedDirectory[];
  /** The thread has walked everything. */
  done: boolean;
  /** The first listings waited on the disk (sent once, with the batch that decides it). */
  cold?: boolean;
}

/** Shared words: the walk's last listing taken (its seq), and a stop flag. */
export const TAKEN = 0;
export const STOP = 1;
/** Shared word: the files the thread has asked the kernel to read ahead (listing-worker.ts). */
export const PREFETCHED = 2;
/**
 * Shared word: while the thread waits for room, the seq of the listing
 * whose taking makes enough room to go on (RESUME_DIRS directories); the
 * walk wakes it only then, not for every listing it takes (NOT_WAITING
 * otherwise).
 */
export const WAKE_AT = 3;
export const SHARED_WORDS = 4;
export const NOT_WAITING = 0x7fffffff;
/** Directories the waiting thread lets the walk take before it goes on. */
export const RESUME_DIRS = 64;

const S_IFMT = 0o170000n;

/** An lstat made by the listing thread, read from its BigInt64Array where the walk needs a field. */
export class ListedStat implements WalkStat {
  constructor(private readonly values: BigInt64Array, private readonly at: number) {}

  private field(i: number): bigint {
    return this.values[this.at + i] as bigint;
  }

  private type(): bigint {
    return this.field(0) & S_IFMT;
  }

  get mode(): bigint {
    return this.field(0);
  }
  get uid(): bigint {
    return this.field(1);
  }
  get gid(): bigint {
    return this.field(2);
  }
  get size(): bigint {
    return this.field(3);
  }
  get mtimeNs(): bigint {
    return this.field(4);
  }
  get ctimeNs(): bigint {
    return this.field(5);
  }
  get mtimeMs(): bigint {
    const ns = this.field(4);
    // Floor, as BigIntStats rounds times before the epoch.
    return ns >= 0n ? ns / 1_000_000n : -((-ns + 999_999n) / 1_000_000n);
  }
  get ino(): bigint {
    return this.field(6);
  }
  get nlink(): bigint {
    return this.field(7);
  }
  get dev(): bigint {
    return this.field(8);
  }
  get rdev(): bigint {
    return this.field(9);
  }

  isDirectory(): boolean {
    return this.type() === 0o040000n;
  }
  isFile(): boolean {
    return this.type() === 0o100000n;
  }
  isSymbolicLink(): boolean {
    return this.type() === 0o120000n;
  }
  isFIFO(): boolean {
    return this.type() === 0o010000n;
  }
  isCharacterDevice(): boolean {
    return this.type() === 0o020000n;
  }
  isBlockDevice(): boolean {
    return this.type() === 0o060000n;
  }
  isSocket(): boolean {
    return this.type() === 0o140000n;
  }
}

/**
 * A listing's raw form (RawListing) from names and their lstats: zeros for
 * a name whose lstat failed. Its buffers are its own, so that the listing
 * thread can transfer them.
 */
export function packListing(names: Buffer[], stats: Array<BigIntStats | Error>): RawListing {
  const packed = Buffer.allocUnsafeSlow(names.reduce((n, name) => n + name.length + 1, 0));
  const values = new BigInt64Array(names.length * STAT_FIELDS);
  let at = 0;
  names.forEach((name, i) => {
    at += name.copy(packed, at);
    packed[at] = 0;
    at += 1;
    const st = stats[i];
    if (st !== undefined && !(st instanceof Error)) putStat(values, i * STAT_FIELDS, st);
  });
  return { names: new Uint8Array(packed.buffer, packed.byteOffset, packed.length), stats: values };
}

/** Writes the fields of `st` at `at` (the listing thread). */
export function putStat(values: BigInt64Array, at: number, st: BigIntStats): void {
  values[at] = st.mode;
  values[at + 1] = st.uid;
  values[at + 2] = st.gid;
  values[at + 3] = st.size;
  values[at + 4] = st.mtimeNs;
  values[at + 5] = st.ctimeNs;
  values[at + 6] = st.ino;
  values[at + 7] = st.nlink;
  values[at + 8] = st.dev;
  values[at + 9] = st.rdev;
}

function codedError(message: string, code: string | undefined): Error {
  const err = new Error(message) as NodeJS.ErrnoException;
  if (code !== undefined) err.code = code;
  return err;
}

/** A listing as the walk uses it; throws the directory's own error (as readdirSync would). */
export function decodeListing(listed: ListedDirectory): Listing {
  if (listed.error !== undefined) throw codedError(listed.error.message, listed.error.code);
  const names: Buffer[] = [];
  const bytes = Buffer.from(listed.names.buffer, listed.names.byteOffset, listed.names.byteLength);
  for (let start = 0; start < bytes.length;) {
    const end = bytes.indexOf(0, start);
    names.push(bytes.subarray(start, end));
    start = end + 1;
  }
  const stats: Array<WalkStat | Error> = names.map((_, i) => new ListedStat(listed.stats, i * STAT_FIELDS));
  for (const [i, message, code] of listed.failed) stats[i] = codedError(message, code);
  return listed.failed.length === 0 ? { names, stats, raw: { names: listed.names, stats: listed.stats } } : { names, stats };
}
