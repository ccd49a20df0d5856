import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BackendError } from '../backends/errors.js';
import type { Archive } from './archive.js';
import { readContent } from './content.js';
import { readDirectory } from './directory.js';
import { FsWriter, type FsMeta } from './fs-writer.js';
import { OwnerNames } from './owner-names.js';
import { Semaphore } from './semaphore.js';
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
  /** Files being read and written at once (their writes wait on the writer's thread, so more than the reads alone need). */
  private readonly writing = new Semaphore(64);
  /** Directory blocks read ahead of the walk, and how many are read at once. */
  private readonly listings = new Map<Entry, Promise<Entry[]>>();
  private readonly reading = new Semaphore(8);
  /** Every directory restored, in walk order: their metadata is set at the end. */
  private readonly directories: Array<{ entry: Entry; target: Buffer }> = [];
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown = null;
  private readonly isRoot = process.getuid?.() === 0;
  private root = '';
  /** Where the file-system calls are made (a thread of their own), during extract. */
  private fs: FsWriter | null = null;

  constructor(private readonly archive: Archive, private readonly options: ExtractOptions = {}) {}

  async extract(entry: Entry, dest: string): Promise<ExtractStats> {
    const root = path.resolve(dest);
    this.root = root;
    await prepareDest(root);
    const from = (this.options.from ?? []).map((c) => Buffer.from(c));
    const fs = new FsWriter((target, message) => this.warn(Buffer.from(target), message));
    this.fs = fs;
    try {
      try {
        if (entry.type === 'dir') {
          await this.directory(entry, Buffer.from(root), from, true);
        } else {
          this.start(this.leaf(entry, Buffer.concat([Buffer.from(root), SLASH, entry.name]), from));
        }
      } finally {
        // Nothing goes on writing after extract has answered, even when the walk failed.
        while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
        await fs.sync();
      }
      if (this.failure !== null) throw this.failure;
      if (fs.failure !== null) throw fs.failure;
      // Last, children before parents: a directory's times and mode once nothing more is written in it.
      for (let i = this.directories.length - 1; i >= 0; i -= 1) {
        const { entry: dir, target } = this.directories[i] as { entry: Entry; target: Buffer };
        fs.meta(target, this.metadata(dir, 'dir'));
      }
      await fs.sync();
      if (fs.failure !== null) throw fs.failure;
    } finally {
      this.fs = null;
      await fs.close();
    }
    this.options.onProgress?.(this.stats);
    return this.stats;
  }

  private get writer(): FsWriter {
    if (this.fs === null) throw new Error('the extractor is not extracting');
    return this.fs;
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
    if (this.fs?.failure != null) throw this.fs.failure;
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
   * The file-system calls (mkdir, symlink, link, write, chmod, lchown,
   * lutimes) are made in order on a thread of their own (fs-writer.ts),
   * while this one reads and opens blocks.
   */
  private async directory(entry: Entry, target: Buffer, rel: Buffer[], isDest: boolean): Promise<void> {
    this.throwIfFailed();
    if (!isDest) this.writer.mkdir(target);
    this.stats.dirs += 1;
    this.directories.push({ entry, target });
    const entries = await this.list(entry);
    for (const child of entries) {
      if (child.type === 'dir' && child.content) this.prefetch(child);
    }
    for (const child of entries) {
      if (!isSafeName(child.name)) throw new BackendError('corrupt', `refusing entry name ${displayName(child.name)}`);
      const childTarget = Buffer.concat([target, SLASH, child.name]);
      const childRel = [...rel, child.name];
      if (child.type === 'dir') {
        await this.directory(child, childTarget, childRel, false);
      } else {
        const release = await this.writing.acquire();
        try {
          this.throwIfFailed();
        } catch (err) {
          release();
          throw err;
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

  private async leaf(entry: Entry, target: Buffer, rel: Buffer[]): Promise<void> {
    switch (entry.type) {
      case 'dir':
        return this.directory(entry, target, rel, false);
      case 'file': {
        const written = this.file(entry, target).then(() => target);
        written.catch(() => undefined);
        this.extracted.set(linkKey(rel), written);
        await written;
        return;
      }
      case 'hardlink': {
        const first = this.extracted.get(linkKey(entry.link ?? []));
        if (first !== undefined) {
          // Sent once the file it links to is written (ops run in order).
          this.writer.link(await first, target);
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
        this.writer.symlink(entry.target ?? Buffer.alloc(0), target, this.metadata(entry, 'symlink'));
        return;
      case 'fifo':
        await this.special(target, ['-m', (entry.mode & 0o7777).toString(8)], 'mkfifo', []);
        this.writer.meta(target, this.metadata(entry, 'special'));
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
        this.writer.meta(target, this.metadata(entry, 'special'));
        return;
      }
    }
  }

  /** mkfifo/mknod take text arguments: make the node under a plain temporary name in DEST, then rename it (names may be any bytes). */
  private async special(target: Buffer, flags: string[], command: string, args: string[]): Promise<void> {
    const tmp = path.join(this.root, `.cairn-tmp-${randomBytes(6).toString('hex')}`);
    // Made here, not on the writer's thread: its directory must exist first.
    await this.writer.sync();
    try {
      await run(command, [...flags, tmp, ...args]);
      await fsp.rename(tmp, target);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      this.warn(target, `${command} failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  /**
   * Writes a file from its blocks: they are read from the archive here
   * (several files at once) and written in order on the writer's thread.
   */
  private async file(entry: Entry, target: Buffer): Promise<void> {
    const fs = this.writer;
    const file = fs.open(target);
    let position = 0;
    try {
      for await (const block of readContent(this.archive, entry.content ?? null)) {
        // Taken before the write: a block that owns its buffer moves to the writer's thread (and reads empty here).
        const length = block.length;
        await fs.write(file, block, position);
        position += length;
        this.stats.bytes += length;
      }
      if (position !== entry.size) {
        throw new BackendError('corrupt', `${displayName(target)}: the archive holds ${position} bytes, the entry says ${entry.size}`);
      }
    } catch (err) {
      fs.abort(file);
      throw err;
    }
    await fs.closeFile(file, target, position, this.metadata(entry, 'file'));
    this.stats.files += 1;
  }

  /** Owner (as far as the user's rights allow), mode and times, as the writer sets them. */
  private metadata(entry: Entry, kind: 'file' | 'dir' | 'symlink' | 'special'): FsMeta {
    const mtime = seconds(entry.mtime);
    const meta: FsMeta = { atime: entry.atime ? seconds(entry.atime) : mtime, mtime };
    if (this.isRoot) {
      meta.uid = this.names.uidOf(entry.user) ?? entry.uid;
      meta.gid = this.names.gidOf(entry.group) ?? entry.gid;
    }
    if (kind !== 'symlink') meta.mode = entry.mode & 0o7777;
    return meta;
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
