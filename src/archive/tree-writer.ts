import { closeSync, lstatSync, openSync, promises as fsp, readdirSync, type BigIntStats } from 'node:fs';
import { ListedStat, packListing, type Listing, type WalkStat } from './listing.js';
import type { ListingThread } from './listing-thread.js';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { BackendError } from '../backends/errors.js';
import { named, type BlockWriter } from './block-writer.js';
import { Chunker, type ChunkSizes } from './chunker.js';
import { indexChunks } from './content.js';
import type { ContentRef } from './content-ref.js';
import { writeDirectory } from './directory.js';
import { listingDigest, rulesFingerprint, subdirectoriesText, type DirectoryMemo } from './directory-memo.js';
import type { FileCache, FileIdentity } from './file-cache.js';
import { OwnerNames } from './owner-names.js';
import { Semaphore } from './semaphore.js';
import type { Entry, Time } from './tree-entry.js';
import { decide, parseRuleFile, type Rule } from './rules.js';
import { ColdPrefetch } from './cold-prefetch.js';
import { readWithoutWaiting } from './read-without-waiting.js';
import { EventLoopSlices } from './event-loop-slices.js';
import { SMALL_FILE_BYTES } from './small-file.js';
import { SmallFileBatches } from './small-file-batches.js';

export interface TreeProgress {
  files: number;
  dirs: number;
  bytesRead: number;
  /** Bytes of files found unchanged in the file cache (not read). */
  bytesCached: number;
  skipped: number;
  /** Of the files read, those read, chunked and named on this thread while a block worker read a big file. */
  filesReadHere: number;
  /** Files handed to this thread's read-ahead (ColdPrefetch): those the listing thread did not read ahead already. */
  filesToReadAhead: number;
  /** Directories whose block was taken from their memo (directory-memo.ts), not built again. */
  dirsRecalled: number;
  /** The file being read, for a progress line. */
  current: string;
}

export interface TreeWriterOptions {
  writer: BlockWriter;
  /** The chunker's table (a promise while the archive is being unlocked: see snapshot.ts). */
  gear: Int32Array | Promise<Int32Array>;
  sizes: ChunkSizes;
  maxPlaintext: number;
  cache?: FileCache | undefined;
  /** The regex list: true/false when a pattern matches the path (relative to the source, leading `/`, directories with a trailing `/`), else null. */
  include?: (relPath: string, isDir: boolean) => boolean | null;
  /** Rules from the config; `.cairn` files found in the tree are added below their directory. */
  rules?: Rule[];
  /** Absolute paths never snapshotted (the archive itself, the file cache). */
  excludeAbsolute?: string[];
  /** Called for each file or directory skipped, with the reason. */
  onSkip?: (relPath: string, reason: string) => void;
  /** Called once, when every directory is listed and every file looked up (their contents may still be being read). */
  onWalked?: (() => void) | undefined;
  /** Called after roughly every `checkpointBytes` read, to flush and commit the file cache. */
  onCheckpoint?: () => Promise<void>;
  checkpointBytes?: number;
  /** Listings made ahead by a thread of their own (listing-thread.ts); the walk lists what it does not find there. */
  listings?: ListingThread | undefined;
  /**
   * What `include` decides from (its patterns, as text), for the directory
   * memo (directory-memo.ts). With `include` and without this, no directory
   * is remembered or recalled.
   */
  includeFingerprint?: string | undefined;
}

/** A child of a directory the walk takes: included, not left out. */
interface Child {
  name: Buffer;
  abs: Buffer;
  st: WalkStat;
}

/** Bumped when what a directory's block is made from changes: memos of other versions are never recalled. */
const MEMO_VERSION = 'cairn directory memo 1';

interface HardLinkTarget {
  path: Buffer[];
  content: Promise<ContentRef | null | undefined>;
}

/** Files up to this size are read in one piece; bigger ones in windows of it (only the undecided tail of a window is copied). */
const READ_SIZE = 16 * 1024 * 1024;
/** Files under this size may be read on the main thread (readSmallHere): their one block is named and sealed there too. */
const SMALL_HERE = 64 * 1024;
const SMALL_HERE_BIGINT = BigInt(SMALL_HERE);
const SLASH = Buffer.from('/');
/** Files above this size are read in windows of their own (see small-file.ts). */
const BIG_FILE = BigInt(SMALL_FILE_BYTES);

/** What the file cache compares to tell a file unchanged. */
function identity(st: WalkStat): FileIdentity {
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
}
const RULE_FILE = Buffer.from('.cairn');

function time(ns: bigint): Time {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += 1_000_000_000n;
  }
  return [Number(sec), Number(nsec)];
}

/**
 * Walks source trees in a fixed order (sorted names, depth first) and turns
 * them into directory blocks. Files are read, chunked and handed to the
 * BlockWriter several at a time; hard links are decided in walk order, so
 * the result is deterministic.
 */
export class TreeWriter {
  readonly progress: TreeProgress = { files: 0, dirs: 0, bytesRead: 0, bytesCached: 0, skipped: 0, filesReadHere: 0, filesToReadAhead: 0, dirsRecalled: 0, current: '' };
  private readonly names = new OwnerNames();
  private readonly hardLinks = new Map<string, HardLinkTarget>();
  private readonly reading = new Semaphore(6);
  /** Of those, files bigger than BIG_FILE (the peak memory of a snapshot is their windows: bench/NOTES.md, "Fourth pass"). */
  private readonly readingBig = new Semaphore(2);
  /** Big files a block worker is reading now: while there is one, small files are read on this thread (readSmallHere). */
  private bigInWorker = 0;
  /** Buffers of readSmallHere (SMALL_HERE + 1 bytes), used again. */
  private readonly smallBuffers: Buffer[] = [];
  /** Small files the workers will read, read ahead on a cold cache. */
  private readonly prefetch = new ColdPrefetch();
  /** The walk's listings are synchronous: it lets the event loop turn every few ms. */
  private readonly slices = new EventLoopSlices();
  /**
   * Leaves walked whose contents are not stored yet: how far the walk may
   * run ahead of the reading. Each holds its entry, its promises and its
   * listing's objects, and the young generation's collections copy them
   * until they are done: with 1,024, the full tree's first snapshot peaked
   * higher (median 235.5 against 222 MiB) and was no faster (bench/NOTES.md,
   * "Fifteenth pass"); small files now go to the worker 64 at a time at most.
   */
  private readonly ahead = new Semaphore(256);
  private readonly excluded: Set<string>;
  private sinceCheckpoint = 0;
  private checkpointing: Promise<void> | null = null;
  private readonly buffers: Buffer[] = [];
  /** Set by `abandon`: the walk lists no more directories. */
  private abandoned: BackendError | null = null;
  /** Small files read by the block engine in batches (null when it reads none). */
  private readonly batches: SmallFileBatches | null;
  /** The part of every directory memo's digest that the snapshot's settings make, or null for no memos (directory-memo.ts). */
  private readonly memoContext: Buffer | null;

  constructor(private readonly options: TreeWriterOptions) {
    this.excluded = new Set((options.excludeAbsolute ?? []).map((p) => path.resolve(p)));
    const { writer } = options;
    const readSmall = writer.smallFileReader;
    this.batches = readSmall === null ? null : new SmallFileBatches(readSmall, () => writer.room());
    const include = options.include === undefined ? '' : options.includeFingerprint;
    this.memoContext = options.cache === undefined || include === undefined ? null
      // Hashed once: every directory's digest starts with it.
      : createHash('sha256').update(JSON.stringify([MEMO_VERSION, options.maxPlaintext, options.sizes, include, [...this.excluded].sort(), this.names.fingerprint])).digest();
  }

  /**
   * Snapshots PATHs: one directory becomes the root itself (its own metadata
   * returned as rootEntry); anything else becomes a root holding one entry
   * per path, named by its last component.
   */
  async snapshotPaths(paths: string[]): Promise<{ root: ContentRef; rootEntry?: Entry }> {
    const absolute = paths.map((p) => path.resolve(p));
    const stats = await Promise.all(absolute.map(async (p) => {
      try {
        return await fsp.lstat(p, { bigint: true });
      } catch (err) {
        throw new BackendError('badRequest', `cannot snapshot ${p}: ${(err as Error).message}`);
      }
    }));
    if (absolute.length === 1 && (stats[0] as BigIntStats).isDirectory()) {
      const abs = Buffer.from(absolute[0] as string);
      const walked = await this.directory(abs, [], '', this.options.rules ?? []);
      this.options.onWalked?.();
      const root = await walked.done;
      const rootEntry = this.baseEntry(Buffer.from(path.basename(absolute[0] as string) || 'root'), stats[0] as BigIntStats, 'dir');
      rootEntry.content = root;
      return { root, rootEntry };
    }
    const seen = new Set<string>();
    const entries: Array<Promise<Entry | null>> = [];
    for (let i = 0; i < absolute.length; i += 1) {
      const abs = absolute[i] as string;
      const name = path.basename(abs);
      if (name === '' || seen.has(name)) throw new BackendError('badRequest', `two paths end in ${JSON.stringify(name)}: snapshot them under different tags or one common parent`);
      seen.add(name);
      entries.push((await this.child(Buffer.from(abs), Buffer.from(name), [], '', stats[i] as BigIntStats, this.options.rules ?? [])).entry);
    }
    this.options.onWalked?.();
    const done = (await Promise.all(entries)).filter((e): e is Entry => e !== null);
    this.progress.dirs += 1;
    return { root: await writeDirectory(this.options.writer, done, this.options.maxPlaintext) };
  }

  /**
   * Stops the walk: no directory is listed after this, so `snapshotPaths`
   * fails soon with `reason` (a BackendError, which no file or directory
   * takes for its own failure to skip it).
   */
  abandon(reason: BackendError): void {
    this.abandoned = reason;
  }

  private baseEntry(name: Buffer, st: WalkStat, type: Entry['type']): Entry {
    const uid = Number(st.uid);
    const gid = Number(st.gid);
    const entry: Entry = { name, type, mode: Number(st.mode & 0o7777n), uid, gid, mtime: time(st.mtimeNs), size: 0 };
    const user = this.names.user(uid);
    const group = this.names.group(gid);
    if (user !== undefined) entry.user = user;
    if (group !== undefined) entry.group = group;
    return entry;
  }

  private skip(relPath: string, reason: string): null {
    this.progress.skipped += 1;
    this.options.onSkip?.(relPath, reason);
    return null;
  }

  /**
   * Lists a directory and starts its children, in walk order: the returned
   * promise (awaited by the caller) settles once every name in the subtree
   * has been looked at and every file's reading has been started; the inner
   * promise settles with the directory's block once all of its contents are
   * stored. So the walk never waits on a file's contents, only on listings,
   * and hard links are still decided in walk order. How far the walk may run
   * ahead of the reading is bounded by `ahead`.
   */
  private async directory(abs: Buffer, rel: Buffer[], relText: string, inherited: Rule[]): Promise<{ done: Promise<ContentRef> }> {
    const listing = await this.list(abs);
    const { names, stats } = listing;
    let rules = inherited;
    let rulesRead = true;
    if (names.some((n) => n.equals(RULE_FILE))) {
      try {
        rules = [...inherited, ...parseRuleFile(await fsp.readFile(Buffer.concat([abs, SLASH, RULE_FILE]), 'utf8'), abs.toString())];
      } catch (err) {
        rulesRead = false;
        this.skip(`${relText}/.cairn`, `rules not used: ${(err as Error).message}`);
      }
    }
    const place = abs.toString('latin1');
    const digest = rulesRead ? this.memoDigest(listing, relText, rules) : null;
    const memo = digest === null ? undefined : this.options.cache?.recallDirectory(place);
    if (memo !== undefined && memo.digest === digest) {
      // The same listing as when the memo was made: only the subdirectories may have changed.
      const subdirs = this.children(abs, relText, names, stats, rules, true);
      const walked = await this.walkChildren(subdirs, rel, relText, rules);
      const done = Promise.all(walked).then((entries) => {
        if (entries.every((e) => e !== null) && subdirectoriesText(entries.map((e) => e.content as ContentRef)) === memo.subs) {
          this.progress.dirs += 1;
          this.progress.dirsRecalled += 1;
          this.progress.files += memo.files;
          this.progress.bytesCached += memo.bytes;
          this.options.cache?.keepDirectory(place);
          return memo.ref;
        }
        // A subdirectory changed: the other entries are made now (none is a hard link: the memo would not have been made).
        return this.rest(abs, rel, relText, names, stats, rules, walked).then((all) => this.written(place, digest, all));
      });
      done.catch(() => undefined);
      return { done };
    }
    const children = this.children(abs, relText, names, stats, rules, false);
    const walked = await this.walkChildren(children, rel, relText, rules);
    const done = this.written(place, digest, children.map((child, i) => ({ child, entry: walked[i] as Promise<Entry | null> })));
    // Failures surface through the caller's await of `done`, not as unhandled rejections meanwhile.
    done.catch(() => undefined);
    return { done };
  }

  /** The digest a directory's memo is recalled by, or null when it can have none (directory-memo.ts). */
  private memoDigest(listing: Listing, relText: string, rules: Rule[]): string | null {
    if (this.memoContext === null) return null;
    const ruleText = rulesFingerprint(rules);
    return ruleText === null ? null : listingDigest(this.memoContext, `${relText}\0${ruleText}`, listing);
  }

  /** The children the walk takes, in order (only the subdirectories with `onlyDirectories`), skipping those whose lstat failed. */
  private children(abs: Buffer, relText: string, names: Buffer[], stats: Array<WalkStat | Error>, rules: Rule[], onlyDirectories: boolean): Child[] {
    const children: Child[] = [];
    for (let i = 0; i < names.length; i += 1) {
      const name = names[i] as Buffer;
      const st = stats[i] as WalkStat | Error;
      if (onlyDirectories && (st instanceof Error || !st.isDirectory())) continue;
      const childAbs = Buffer.concat([abs, SLASH, name]);
      const childRel = `${relText}/${name.toString('utf8')}`;
      if (st instanceof Error) {
        this.skip(childRel, st.message);
        continue;
      }
      if (!this.included(childAbs, childRel, st, rules)) continue;
      if (this.excluded.has(childAbs.toString())) continue;
      children.push({ name, abs: childAbs, st });
    }
    return children;
  }

  /** Starts each child in walk order (a subdirectory is walked whole before the next child); their entries, in order. */
  private async walkChildren(children: Child[], rel: Buffer[], relText: string, rules: Rule[]): Promise<Array<Promise<Entry | null>>> {
    const entries: Array<Promise<Entry | null>> = [];
    for (const { name, abs: childAbs, st } of children) {
      // Only leaves count against `ahead`: a directory waits on its subtree, so counting
      // directories too would let a tree deeper than the limit wait on itself.
      const release = st.isDirectory() ? null : await this.ahead.acquire();
      const { entry } = await this.child(childAbs, name, rel, relText, st, rules);
      if (release !== null) void entry.then(release, release);
      entries.push(entry);
    }
    return entries;
  }

  /** After a memo's subdirectories changed: the directory's other children, started now, and all of them with their entries. */
  private async rest(abs: Buffer, rel: Buffer[], relText: string, names: Buffer[], stats: Array<WalkStat | Error>, rules: Rule[], walked: Array<Promise<Entry | null>>): Promise<Array<{ child: Child; entry: Promise<Entry | null> }>> {
    const all = this.children(abs, relText, names, stats, rules, false);
    const others = await this.walkChildren(all.filter((c) => !c.st.isDirectory()), rel, relText, rules);
    let d = 0;
    let o = 0;
    return all.map((child) => ({ child, entry: (child.st.isDirectory() ? walked[d++] : others[o++]) as Promise<Entry | null> }));
  }

  /**
   * A directory's block, once its children's entries are in; remembered in
   * a memo (directory-memo.ts) when `digest` is not null and nothing in it
   * keeps it from being one.
   */
  private async written(place: string, digest: string | null, children: Array<{ child: Child; entry: Promise<Entry | null> }>): Promise<ContentRef> {
    const entries = await Promise.all(children.map((c) => c.entry));
    this.progress.dirs += 1;
    const ref = await writeDirectory(this.options.writer, entries.filter((e): e is Entry => e !== null), this.options.maxPlaintext);
    if (digest !== null) {
      const memo = this.memoOf(children.map((c, i) => ({ st: c.child.st, entry: entries[i] as Entry | null })), digest, ref);
      if (memo !== null) this.options.cache?.stageDirectory(place, memo);
    }
    return ref;
  }

  /**
   * A memo of a directory just written, or null when it cannot have one: a
   * child skipped, a hard link (decided by the walk's order across the tree),
   * or a file whose size changed while it was read (its content is not what
   * its lstat says; the file cache does not keep it either).
   */
  private memoOf(children: Array<{ st: WalkStat; entry: Entry | null }>, digest: string, ref: ContentRef): DirectoryMemo | null {
    const subdirs: ContentRef[] = [];
    let files = 0;
    let bytes = 0;
    for (const { st, entry } of children) {
      if (entry === null) return null;
      if (entry.type === 'dir') {
        subdirs.push(entry.content as ContentRef);
        continue;
      }
      if (st.nlink > 1n || entry.type === 'hardlink') return null;
      if (entry.type === 'file') {
        if (BigInt(entry.size) !== st.size) return null;
        files += 1;
        bytes += entry.size;
      }
    }
    return { digest, subs: subdirectoriesText(subdirs), ref, files, bytes };
  }

  /** The regex list decides first; then the last matching rule; else the path is included. */
  private included(abs: Buffer, relText: string, st: WalkStat, rules: Rule[]): boolean {
    const isDir = st.isDirectory();
    const byRegex = this.options.include?.(isDir ? `${relText}/` : relText, isDir) ?? null;
    if (byRegex !== null) return byRegex;
    if (rules.length === 0) return true;
    const type = isDir ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
    return decide(rules, { abs: abs.toString(), rel: relText.slice(1), type, size: Number(st.size), mtimeMs: Number(st.mtimeMs) }) ?? true;
  }

  /**
   * A directory's names (sorted) and their lstat (or the error): from the
   * listing thread when it has them, else made here. These calls
   * are synchronous: through libuv's thread pool each readdir and lstat cost
   * a wake-up of a pool thread and of this one, several times the call on a
   * warm or fast disk (bench/NOTES.md, "Fourth pass"). The walk lets the
   * event loop run every few milliseconds, so that the workers' replies and
   * the puts are not held up behind it.
   */
  private async list(abs: Buffer): Promise<Listing> {
    await this.slices.pause();
    if (this.abandoned !== null) throw this.abandoned;
    const ahead = await this.options.listings?.take(abs);
    if (ahead !== undefined && ahead !== null) return ahead;
    const names = readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare);
    const stats = names.map((name): BigIntStats | Error => {
      try {
        return lstatSync(Buffer.concat([abs, SLASH, name]), { bigint: true });
      } catch (err) {
        return err as Error;
      }
    });
    if (this.memoContext === null || stats.some((st) => st instanceof Error)) return { names, stats };
    return { names, stats, raw: packListing(names, stats) };
  }

  /**
   * The entry for one path, once its walk is done (for a directory, its
   * whole subtree listed): the promise inside settles with the entry when
   * its contents are stored. A file's reading is started, not awaited.
   */
  private async child(abs: Buffer, name: Buffer, parentRel: Buffer[], parentText: string, st: WalkStat, rules: Rule[]): Promise<{ entry: Promise<Entry | null> }> {
    const rel = [...parentRel, name];
    const relText = `${parentText}/${name.toString('utf8')}`;
    if (st.isDirectory()) {
      const entry = this.baseEntry(name, st, 'dir');
      let walked: { done: Promise<ContentRef> };
      try {
        walked = await this.directory(abs, rel, relText, rules);
      } catch (err) {
        if (err instanceof BackendError) throw err;
        return { entry: Promise.resolve(this.skip(`${relText}/`, (err as Error).message)) };
      }
      return {
        entry: walked.done.then((ref) => {
          entry.content = ref;
          return entry;
        }),
      };
    }
    const started = this.leaf(abs, name, rel, relText, st);
    started.catch(() => undefined);
    return { entry: started };
  }

  private leaf(abs: Buffer, name: Buffer, rel: Buffer[], relText: string, st: WalkStat): Promise<Entry | null> {
    if (st.isFile()) return this.file(abs, name, rel, relText, st);
    if (st.isSymbolicLink()) {
      return fsp.readlink(abs, { encoding: 'buffer' }).then((target) => {
        const entry = this.baseEntry(name, st, 'symlink');
        entry.target = target;
        entry.size = target.length;
        return entry;
      }, (err: Error) => this.skip(relText, err.message));
    }
    if (st.isFIFO()) return Promise.resolve(this.baseEntry(name, st, 'fifo'));
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      const entry = this.baseEntry(name, st, st.isCharacterDevice() ? 'char' : 'block');
      entry.rdev = Number(st.rdev);
      return Promise.resolve(entry);
    }
    if (st.isSocket()) return Promise.resolve(this.skip(relText, 'socket (not restorable; skipped)'));
    return Promise.resolve(this.skip(relText, 'unknown file type'));
  }

  private file(abs: Buffer, name: Buffer, rel: Buffer[], relText: string, st: WalkStat): Promise<Entry | null> {
    const entry = this.baseEntry(name, st, 'file');
    const cached = this.options.cache?.lookup(abs, identity(st)) ?? null;
    // Not a file the listing thread listed and read ahead already (ListedStat: its listing came from the thread).
    const readAhead = this.options.listings?.readsAhead === true && st instanceof ListedStat;
    if (cached === null && st.size > 0n && st.size <= BIG_FILE && this.options.writer.fileReader !== null && !readAhead) {
      this.progress.filesToReadAhead += 1;
      this.prefetch.add(abs);
    }
    if (st.nlink > 1n) {
      const id = `${st.dev}:${st.ino}`;
      const first = this.hardLinks.get(id);
      if (first !== undefined) {
        entry.type = 'hardlink';
        entry.link = first.path;
        return first.content.then((content) => {
          if (content === undefined) return this.skip(relText, 'hard link to a file that was skipped');
          entry.content = content;
          entry.size = Number(st.size);
          return entry;
        });
      }
      const content = this.readFile(abs, relText, st, cached).then((r) => {
        if (r === null) return undefined;
        entry.size = r.size;
        return r.ref;
      });
      this.hardLinks.set(id, { path: rel, content });
      return content.then((c) => {
        if (c === undefined) return null;
        entry.content = c;
        return entry;
      });
    }
    return this.readFile(abs, relText, st, cached).then((r) => {
      if (r === null) return null;
      entry.content = r.ref;
      entry.size = r.size;
      return entry;
    });
  }

  /** `cached`: what the file cache says this file holds (looked up by the caller), or null. */
  private async readFile(abs: Buffer, relText: string, st: WalkStat, cached: ContentRef | null): Promise<{ ref: ContentRef | null; size: number } | null> {
    const { writer } = this.options;
    const id = identity(st);
    this.progress.files += 1;
    if (st.size === 0n) return { ref: null, size: 0 };
    if (cached !== null) {
      this.progress.bytesCached += Number(st.size);
      return { ref: cached, size: Number(st.size) };
    }
    const reader = writer.fileReader;
    if (this.batches !== null && reader !== null && st.size <= BIG_FILE && !this.readsHere(st)) {
      this.progress.current = relText;
      try {
        return await this.readBatched(this.batches, reader, abs, id, st);
      } catch (err) {
        if (err instanceof BackendError) throw err;
        return this.skip(relText, (err as Error).message);
      }
    }
    // A big file holds a window of the worker while it is read (and its chunks pin more): at most a few at once.
    const releaseBig = st.size > BIG_FILE ? await this.readingBig.acquire() : null;
    const release = await this.reading.acquire();
    try {
      this.progress.current = relText;
      if (reader !== null && this.readsHere(st)) return await this.readSmallHere(reader, abs, id, st);
      if (reader !== null) {
        if (releaseBig === null) return await this.readInWorker(reader, abs, id, st);
        this.bigInWorker += 1;
        try {
          return await this.readInWorker(reader, abs, id, st);
        } finally {
          this.bigInWorker -= 1;
        }
      }
      const handle = await fsp.open(abs, 'r');
      const chunks: Array<Promise<{ key: string; size: number }>> = [];
      let size = 0;
      try {
        const chunker = new Chunker(await this.options.gear, this.options.sizes);
        const readSize = Number(st.size) < READ_SIZE ? Math.max(Number(st.size) + 1, 4096) : READ_SIZE;
        // When the writer copies what it is given, one buffer serves the whole file (and the next file): no fresh pages.
        const reuse = writer.copiesInput ? this.takeBuffer(readSize + this.options.sizes.max) : null;
        let rest: Buffer = Buffer.alloc(0);
        try {
          for (;;) {
            let buffer: Buffer;
            if (reuse !== null) {
              buffer = reuse;
              rest.copy(buffer, 0);
            } else {
              // A fresh buffer each time (chunks are views of it and live on in the writer); only the undecided tail is copied.
              buffer = Buffer.allocUnsafe(rest.length + readSize);
              rest.copy(buffer, 0);
            }
            const { bytesRead } = await handle.read(buffer, rest.length, readSize, null);
            size += bytesRead;
            this.progress.bytesRead += bytesRead;
            const split = chunker.split(buffer.subarray(0, rest.length + bytesRead), bytesRead === 0);
            for (const chunk of split.chunks) chunks.push((await named(writer, chunk)).chunk);
            rest = split.rest;
            if (bytesRead === 0) break;
          }
        } finally {
          if (reuse !== null) this.buffers.push(reuse);
        }
      } finally {
        await handle.close();
      }
      return await this.stored(abs, id, st, await Promise.all(chunks), size);
    } catch (err) {
      if (err instanceof BackendError) throw err;
      return this.skip(relText, (err as Error).message);
    } finally {
      release();
      releaseBig?.();
    }
  }

  /** Whether a file is read on this thread now (readSmallHere): one under 64 KiB while a block worker reads a big file. */
  private readsHere(st: WalkStat): boolean {
    return this.options.writer.copiesInput && this.bigInWorker > 0 && st.size < SMALL_HERE_BIGINT;
  }

  /**
   * Reads, chunks and names a small file on this thread, synchronously. Used
   * while a block worker reads a big file: a small file sent to the worker
   * then waits behind the big file's windows, while this thread is two-thirds
   * idle (bench/NOTES.md, "Eighth pass"), and the round trip costs more than
   * the work. Its one block, under 64 KiB, is named and sealed here anyway
   * (block-engine.ts). The buffer goes back to the pool only once the writer
   * has copied the chunks (`copiesInput`).
   */
  private async readSmallHere(reader: NonNullable<BlockWriter['fileReader']>, abs: Buffer, id: FileIdentity, st: WalkStat): Promise<{ ref: ContentRef | null; size: number }> {
    const { writer } = this.options;
    // One byte more than lstat said: a file that grew since is then read by the worker, which streams any size.
    const claim = Number(st.size) + 1;
    const buffer = this.smallBuffers.pop() ?? Buffer.allocUnsafeSlow(SMALL_HERE + 1);
    try {
      let size: number;
      const fd = openSync(abs, 'r');
      try {
        size = await readWithoutWaiting(fd, buffer, 0, claim);
      } finally {
        closeSync(fd);
      }
      if (size === claim) return await this.readInWorker(reader, abs, id, st);
      this.progress.bytesRead += size;
      this.progress.filesReadHere += 1;
      const chunker = new Chunker(await this.options.gear, this.options.sizes);
      const chunks: Array<Promise<{ key: string; size: number }>> = [];
      for (const chunk of chunker.split(buffer.subarray(0, size), true).chunks) chunks.push((await named(writer, chunk)).chunk);
      return await this.stored(abs, id, st, await Promise.all(chunks), size);
    } finally {
      // The writer has copied the chunks by now (copiesInput): the buffer may serve the next file.
      if (this.smallBuffers.length < 8) this.smallBuffers.push(buffer);
    }
  }

  /**
   * readFile for a small file: read, chunked and named by a block worker
   * with a batch of others (small-file-batches.ts). One that grew past its
   * lstat size since is read again on its own, in windows.
   */
  private async readBatched(batches: SmallFileBatches, reader: NonNullable<BlockWriter['fileReader']>, abs: Buffer, id: FileIdentity, st: WalkStat): Promise<{ ref: ContentRef | null; size: number }> {
    const read = await batches.read(abs, Number(st.size));
    if ('error' in read) throw new Error(read.error);
    if ('grew' in read) {
      const release = await this.reading.acquire();
      try {
        return await this.readInWorker(reader, abs, id, st);
      } finally {
        release();
      }
    }
    this.progress.bytesRead += read.bytes;
    const keys = this.options.writer.adoptNow(read.blocks);
    return this.stored(abs, id, st, read.blocks.map((b, i) => ({ key: keys[i] as string, size: b.size })), read.bytes);
  }

  /** readFile, with reading, chunking and naming done by the block engine's workers. */
  private async readInWorker(reader: NonNullable<BlockWriter['fileReader']>, abs: Buffer, id: FileIdentity, st: WalkStat): Promise<{ ref: ContentRef | null; size: number }> {
    const { writer } = this.options;
    const chunks: Array<{ key: string; size: number }> = [];
    let size = 0;
    for await (const window of reader(abs, Number(st.size))) {
      size += window.bytes;
      this.progress.bytesRead += window.bytes;
      const keys = await writer.adopt(window.blocks);
      window.blocks.forEach((b, i) => chunks.push({ key: keys[i] as string, size: b.size }));
    }
    return this.stored(abs, id, st, chunks, size);
  }

  /**
   * The end of every way of reading a file: its content reference made from
   * its chunks, remembered in the file cache (when the file was read whole,
   * as lstat saw it), and its bytes counted towards the next checkpoint.
   */
  private async stored(abs: Buffer, id: FileIdentity, st: WalkStat, chunks: Array<{ key: string; size: number }>, size: number): Promise<{ ref: ContentRef | null; size: number }> {
    const { cache, writer } = this.options;
    const ref = await indexChunks(writer, chunks, this.options.maxPlaintext);
    if (ref !== null && cache !== undefined && BigInt(size) === st.size) cache.stage(abs, id, ref);
    this.sinceCheckpoint += size;
    await this.maybeCheckpoint();
    return { ref, size };
  }

  /** A read buffer of at least `size` bytes from the pool (kept small: one per concurrent reader). */
  private takeBuffer(size: number): Buffer {
    const i = this.buffers.findIndex((b) => b.length >= size);
    if (i >= 0) return this.buffers.splice(i, 1)[0] as Buffer;
    if (this.buffers.length > 0 && size <= READ_SIZE + this.options.sizes.max) this.buffers.pop();
    return Buffer.allocUnsafeSlow(size <= 1024 * 1024 ? 1024 * 1024 + this.options.sizes.max : READ_SIZE + this.options.sizes.max);
  }

  private async maybeCheckpoint(): Promise<void> {
    const every = this.options.checkpointBytes ?? 1024 * 1024 * 1024;
    if (this.options.onCheckpoint === undefined || this.sinceCheckpoint < every || this.checkpointing !== null) return;
    this.sinceCheckpoint = 0;
    this.checkpointing = this.options.onCheckpoint().finally(() => {
      this.checkpointing = null;
    });
    await this.checkpointing;
  }
}
