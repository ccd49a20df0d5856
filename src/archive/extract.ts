import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, linkSync, mkdirSync, promises as fsp, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BackendError } from '../backends/errors.js';
import type { Archive } from './archive.js';
import { ByteBudget } from './byte-budget.js';
import { openDataBlock, readSealedContent } from './content.js';
import { readDirectory } from './directory.js';
import { OwnerNames } from './owner-names.js';
import { applyMetadata, createModeOf, createRestoredFile, discardPartial, probeNewEntry, writeSparse, writingTo, type NewEntry, type RestoredKind, type RestoredMetadata } from './restore-file.js';
import { RestoreThread } from './restore-thread.js';
import { restoreThreadByDefault } from './worker-prestart.js';
import { Semaphore } from './semaphore.js';
import { EventLoopSlices } from './event-loop-slices.js';
import { displayName, isSafeName, type Entry, type Time } from './tree-entry.js';

const run = promisify(execFile);
const SLASH = Buffer.from('/');

export interface ExtractStats {
  files: number;
  dirs: number;
  bytes: number;
  warnings: number;
}

export interface ExtractOptions {
  /** Path of the entry from the snapshot root (for hard links), as names. */
  from?: string[];
  onWarning?: (path: string, message: string) => void;
  onProgress?: (stats: ExtractStats) => void;
  /**
   * Whether files are also written by a second thread (RestoreThread).
   * Default: when the machine has more than one core, unless the
   * environment variable CAIRN_RESTORE_THREAD is "0".
   */
  thread?: boolean;
}

function seconds(t: Time): number {
  return t[0] + t[1] / 1e9;
}

function linkKey(components: readonly Buffer[]): string {
  return components.map((c) => c.toString('latin1')).join('\0');
}

/**
 * Restores an entry under DEST (issue 7, extract): a directory becomes DEST
 * itself, anything else is written inside DEST under its name. Contents,
 * modes, owners (as far as the user's rights allow) and times; hard links as
 * links. DEST must be new or empty, and every name is checked, so nothing is
 * ever written outside it.
 */
export class Extractor {
  readonly stats: ExtractStats = { files: 0, dirs: 0, bytes: 0, warnings: 0 };
  private readonly names = new OwnerNames();
  /** Files written (or being written), by path from the snapshot root: hard links wait for theirs. */
  private readonly extracted = new Map<string, Promise<Buffer>>();
  private readonly writing = new Semaphore(8);
  /**
   * The blocks of the files being written, read ahead of their writes: bytes
   * held at once. With 32 MiB the full bench tree's restore peaked at
   * 232-242 MiB, with 8 MiB at 215-224 MiB, as fast (bench/NOTES.md).
   */
  private readonly readAhead = new ByteBudget(8 * 1024 * 1024);
  /** Directory blocks read ahead of the walk, and how many are read at once. */
  private readonly listings = new Map<Entry, Promise<Entry[]>>();
  private readonly reading = new Semaphore(8);
  /** Every directory restored, in walk order: their metadata is set at the end. */
  private readonly directories: Array<{ entry: Entry; target: Buffer }> = [];
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown = null;
  private readonly isRoot = process.getuid?.() === 0;
  /**
   * What every entry made in DEST gets (probeNewEntry): no chown for an
   * entry of that owner, and a file whose mode the mask leaves whole is
   * created with it (createModeOf). Null: every entry gets its chown and chmod.
   */
  private newEntry: NewEntry | null = null;
  /** The walk and most reads are synchronous: it lets the event loop turn every few ms (see EventLoopSlices). */
  private readonly slices = new EventLoopSlices();
  private root = '';
  /** The second thread that writes files of one block, when there is one. */
  private readonly thread: RestoreThread | null;
  /** Files written by that thread. */
  filesInThread = 0;

  constructor(private readonly archive: Archive, private readonly options: ExtractOptions = {}) {
    const thread = options.thread ?? restoreThreadByDefault();
    this.thread = thread ? new RestoreThread(archive.keys.block) : null;
  }

  async extract(entry: Entry, dest: string): Promise<ExtractStats> {
    const root = path.resolve(dest);
    this.root = root;
    await prepareDest(root);
    this.newEntry = probeNewEntry(root);
    const from = (this.options.from ?? []).map((c) => Buffer.from(c));
    try {
      if (entry.type === 'dir') {
        await this.directory(entry, Buffer.from(root), from, true);
      } else {
        this.start(this.leaf(entry, Buffer.concat([Buffer.from(root), SLASH, entry.name]), from));
      }
    } finally {
      // Nothing goes on writing after extract has answered, even when the walk failed.
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
      await this.thread?.close();
    }
    if (this.failure !== null) throw this.failure;
    // Last, children before parents: a directory's times and mode once nothing more is written in it.
    for (let i = this.directories.length - 1; i >= 0; i -= 1) {
      const { entry: dir, target } = this.directories[i] as { entry: Entry; target: Buffer };
      // DEST may have been there, with an owner of its own: it is always given the entry's.
      const isDest = i === 0 && entry.type === 'dir';
      this.apply(target, this.restoredMetadata(dir, 'dir', isDest), 'dir');
    }
    this.options.onProgress?.(this.stats);
    return this.stats;
  }

  private warn(target: Buffer, message: string): void {
    this.stats.warnings += 1;
    this.options.onWarning?.(displayName(target), message);
  }

  /** Runs a leaf's restore alongside the walk; the first failure stops the walk. */
  private start(work: Promise<void>): void {
    const tracked = work.catch((err: unknown) => {
      if (this.failure === null) this.failure = err;
    }).finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  /**
   * Walks a directory in order (so hard links meet the file they link to
   * first): its subdirectories' blocks are read ahead, its files are written
   * alongside the walk (at most `writing` at once), and its own metadata
   * waits for the end of the extract.
   *
   * Calls that only make or change an entry in the page cache (mkdir,
   * symlink, link, write, chmod, lchown, lutimes) are synchronous: through
   * the thread pool each costs the walk several times the call itself
   * (restore of the small bench tree: 2.6-2.9 s with them async, 2.2-2.6 s
   * sync). Only archive reads are asynchronous.
   */
  private async directory(entry: Entry, target: Buffer, rel: Buffer[], isDest: boolean): Promise<void> {
    if (this.failure !== null) throw this.failure;
    if (!isDest) mkdirSync(target, { mode: 0o700 });
    this.stats.dirs += 1;
    this.directories.push({ entry, target });
    const entries = await this.list(entry);
    for (const child of entries) {
      if (child.type === 'dir' && child.content) this.prefetch(child);
    }
    for (const child of entries) {
      await this.slices.pause();
      if (!isSafeName(child.name)) throw new BackendError('corrupt', `refusing entry name ${displayName(child.name)}`);
      const childTarget = Buffer.concat([target, SLASH, child.name]);
      const childRel = [...rel, child.name];
      if (child.type === 'dir') {
        await this.directory(child, childTarget, childRel, false);
      } else if (this.thread !== null && child.type === 'file' && child.content?.level === 0 && this.thread.hasRoom(child.size)) {
        // Not counted against `writing`: the thread's own limits apply.
        this.start(this.leaf(child, childTarget, childRel, this.thread.claim(child.size)));
      } else {
        const release = await this.writing.acquire();
        if (this.failure !== null) {
          release();
          throw this.failure;
        }
        this.start(this.leaf(child, childTarget, childRel).finally(release));
      }
    }
    this.options.onProgress?.(this.stats);
  }

  /** A directory's entries, read ahead by `prefetch` or now. */
  private list(entry: Entry): Promise<Entry[]> {
    const ahead = this.listings.get(entry);
    if (ahead === undefined) return this.readEntries(entry);
    this.listings.delete(entry);
    return ahead;
  }

  private prefetch(entry: Entry): void {
    if (this.listings.has(entry)) return;
    const entries = this.readEntries(entry);
    entries.catch(() => undefined);
    this.listings.set(entry, entries);
  }

  private async readEntries(entry: Entry): Promise<Entry[]> {
    if (!entry.content) return [];
    const release = await this.reading.acquire();
    try {
      return await readDirectory(this.archive, entry.content);
    } finally {
      release();
    }
  }

  /** Restores anything but a directory; `claim`: a file of one block written by the restore thread. */
  private async leaf(entry: Entry, target: Buffer, rel: Buffer[], claim?: { size: number }): Promise<void> {
    switch (entry.type) {
      case 'dir':
        return this.directory(entry, target, rel, false);
      case 'file': {
        const written = (claim !== undefined ? this.fileInThread(entry, target, claim) : this.file(entry, target)).then(() => target);
        written.catch(() => undefined);
        this.extracted.set(linkKey(rel), written);
        await written;
        return;
      }
      case 'hardlink': {
        const first = this.extracted.get(linkKey(entry.link ?? []));
        if (first !== undefined) {
          linkSync(await first, target);
          this.stats.files += 1;
          return;
        }
        // The file it links to is outside what is being extracted: restore a copy (later links link to it).
        const written = this.file(entry, target).then(() => target);
        written.catch(() => undefined);
        this.extracted.set(linkKey(entry.link ?? []), written);
        await written;
        return;
      }
      case 'symlink':
        symlinkSync(entry.target ?? Buffer.alloc(0), target);
        this.metadata(entry, target, 'symlink');
        return;
      case 'fifo':
        await this.special(target, ['-m', (entry.mode & 0o7777).toString(8)], 'mkfifo', []);
        this.metadata(entry, target, 'special');
        return;
      case 'char':
      case 'block': {
        if (!this.isRoot) {
          this.warn(target, `${entry.type} device not restored (needs root)`);
          return;
        }
        const rdev = entry.rdev ?? 0;
        const major = Math.floor(rdev / 256) & 0xfff;
        const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & ~0xff);
        await this.special(target, ['-m', (entry.mode & 0o7777).toString(8)], 'mknod', [entry.type === 'char' ? 'c' : 'b', String(major), String(minor)]);
        this.metadata(entry, target, 'special');
        return;
      }
    }
  }

  /** mkfifo/mknod take text arguments: make the node under a plain temporary name in DEST, then rename it (names may be any bytes). */
  private async special(target: Buffer, flags: string[], command: string, args: string[]): Promise<void> {
    const tmp = path.join(this.root, `.cairn-tmp-${randomBytes(6).toString('hex')}`);
    try {
      await run(command, [...flags, tmp, ...args]);
      await fsp.rename(tmp, target);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      this.warn(target, `${command} failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  /**
   * Writes a file from its blocks. The writes are synchronous: they only
   * copy into the page cache, and through the thread pool each would cost
   * the walk more than the copy. The blocks are read from the archive
   * asynchronously, so other files go on meanwhile.
   */
  private async file(entry: Entry, target: Buffer): Promise<void> {
    const meta = this.restoredMetadata(entry, 'file');
    const fd = createRestoredFile(target, meta.createMode);
    try {
      let position = 0;
      let end = 0;
      for await (const sealed of readSealedContent(this.archive, entry.content ?? null, { budget: this.readAhead, size: entry.size })) {
        // Opened into the codec's own buffers and written in the same turn: no other file's block is opened
        // between (bench/NOTES.md, "Sixteenth pass").
        const block = openDataBlock(this.archive, sealed, true);
        const written = writingTo(target, () => writeSparse(fd, block, position));
        if (written > 0) end = position + written;
        position += block.length;
        this.stats.bytes += block.length;
      }
      if (position !== entry.size) {
        throw new BackendError('corrupt', `${displayName(target)}: the archive holds ${position} bytes, the entry says ${entry.size}`);
      }
      // A file that ends in a hole gets its length here.
      if (end < position) writingTo(target, () => ftruncateSync(fd, position));
    } catch (err) {
      // Short, or with holes where data was: not left looking restored.
      discardPartial(target);
      throw err;
    } finally {
      closeSync(fd);
    }
    this.stats.files += 1;
    this.apply(target, meta, 'file');
  }

  /**
   * A file of one block, through the restore thread: its block is read here
   * (backends are used from this thread only) and handed over sealed.
   */
  private async fileInThread(entry: Entry, target: Buffer, claim: { size: number }): Promise<void> {
    const thread = this.thread as RestoreThread;
    const key = (entry.content as { key: string }).key;
    let sealed: Uint8Array;
    try {
      sealed = await this.archive.readSealed(key);
    } catch (err) {
      thread.cancel(claim);
      throw err;
    }
    const warnings = await thread.write(claim, { path: target.toString('latin1'), key, size: entry.size, meta: this.restoredMetadata(entry, 'file') }, sealed);
    for (const [what, message] of warnings) this.warn(target, `${what} not restored: ${message}`);
    this.filesInThread += 1;
    this.stats.files += 1;
    this.stats.bytes += entry.size;
  }

  /**
   * Owner (as far as the user's rights allow: root only, and only when a
   * new entry does not get it anyway), mode (for a file, the mode it is
   * created with when that is its whole mode) and times of an entry.
   */
  private restoredMetadata(entry: Entry, kind: RestoredKind, ownerAlways = false): RestoredMetadata {
    const mtime = seconds(entry.mtime);
    const meta: RestoredMetadata = { mode: entry.mode, atime: entry.atime ? seconds(entry.atime) : mtime, mtime };
    if (this.isRoot) {
      const uid = this.names.uidOf(entry.user) ?? entry.uid;
      const gid = this.names.gidOf(entry.group) ?? entry.gid;
      const made = this.newEntry?.owner;
      if (ownerAlways || made === undefined || made[0] !== uid || made[1] !== gid) meta.owner = [uid, gid];
    }
    if (kind === 'file' && this.newEntry !== null) {
      const createMode = createModeOf(entry.mode, this.newEntry.umask);
      if (createMode !== undefined) meta.createMode = createMode;
    }
    return meta;
  }

  private metadata(entry: Entry, target: Buffer, kind: RestoredKind): void {
    this.apply(target, this.restoredMetadata(entry, kind), kind);
  }

  private apply(target: Buffer, meta: RestoredMetadata, kind: RestoredKind): void {
    applyMetadata(target, meta, kind, (what, message) => this.warn(target, `${what} not restored: ${message}`));
  }
}

/** DEST must not exist (it is created) or be an empty directory. */
async function prepareDest(dest: string): Promise<void> {
  try {
    const st = await fsp.lstat(dest);
    if (!st.isDirectory()) throw new BackendError('badRequest', `${dest} exists and is not a directory`);
    if ((await fsp.readdir(dest)).length > 0) throw new BackendError('badRequest', `${dest} is not empty: extract into a new or empty directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await fsp.mkdir(dest, { recursive: true, mode: 0o700 });
  }
}
