import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BackendError } from '../backends/errors.js';
import type { Archive } from './archive.js';
import { readContent } from './content.js';
import { readDirectory } from './directory.js';
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
  private readonly writing = new Semaphore(4);
  private readonly isRoot = process.getuid?.() === 0;
  private root = '';

  constructor(private readonly archive: Archive, private readonly options: ExtractOptions = {}) {}

  async extract(entry: Entry, dest: string): Promise<ExtractStats> {
    const root = path.resolve(dest);
    this.root = root;
    await prepareDest(root);
    const from = (this.options.from ?? []).map((c) => Buffer.from(c));
    if (entry.type === 'dir') {
      await this.directory(entry, Buffer.from(root), from, true);
    } else {
      await this.leaf(entry, Buffer.concat([Buffer.from(root), SLASH, entry.name]), from);
    }
    return this.stats;
  }

  private warn(target: Buffer, message: string): void {
    this.stats.warnings += 1;
    this.options.onWarning?.(displayName(target), message);
  }

  private async directory(entry: Entry, target: Buffer, rel: Buffer[], isDest: boolean): Promise<void> {
    if (!isDest) await fsp.mkdir(target, { mode: 0o700 });
    this.stats.dirs += 1;
    const entries = entry.content ? await readDirectory(this.archive, entry.content) : [];
    const pending: Array<Promise<void>> = [];
    for (const child of entries) {
      if (!isSafeName(child.name)) throw new BackendError('corrupt', `refusing entry name ${displayName(child.name)}`);
      const childTarget = Buffer.concat([target, SLASH, child.name]);
      const childRel = [...rel, child.name];
      if (child.type === 'dir') {
        await this.directory(child, childTarget, childRel, false);
      } else if (child.type === 'file') {
        const release = await this.writing.acquire();
        pending.push(this.leaf(child, childTarget, childRel).finally(release));
      } else {
        await Promise.all(pending.splice(0));
        await this.leaf(child, childTarget, childRel);
      }
    }
    await Promise.all(pending);
    await this.metadata(entry, target, 'dir');
    this.options.onProgress?.(this.stats);
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
          await fsp.link(await first, target);
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
        await fsp.symlink(entry.target ?? Buffer.alloc(0), target);
        await this.metadata(entry, target, 'symlink');
        return;
      case 'fifo':
        await this.special(target, ['-m', (entry.mode & 0o7777).toString(8)], 'mkfifo', []);
        await this.metadata(entry, target, 'special');
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
        await this.metadata(entry, target, 'special');
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

  private async file(entry: Entry, target: Buffer): Promise<void> {
    const handle = await fsp.open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      let position = 0;
      for await (const block of readContent(this.archive, entry.content ?? null)) {
        await writeSparse(handle, block, position);
        position += block.length;
        this.stats.bytes += block.length;
      }
      if (position !== entry.size) {
        throw new BackendError('corrupt', `${displayName(target)}: the archive holds ${position} bytes, the entry says ${entry.size}`);
      }
      await handle.truncate(position);
    } finally {
      await handle.close();
    }
    this.stats.files += 1;
    await this.metadata(entry, target, 'file');
  }

  private async metadata(entry: Entry, target: Buffer, kind: 'file' | 'dir' | 'symlink' | 'special'): Promise<void> {
    if (this.isRoot) {
      const uid = this.names.uidOf(entry.user) ?? entry.uid;
      const gid = this.names.gidOf(entry.group) ?? entry.gid;
      await fsp.lchown(target, uid, gid).catch((err: Error) => this.warn(target, `owner not restored: ${err.message}`));
    }
    if (kind !== 'symlink') await fsp.chmod(target, entry.mode & 0o7777).catch((err: Error) => this.warn(target, `mode not restored: ${err.message}`));
    const mtime = seconds(entry.mtime);
    await fsp.lutimes(target, entry.atime ? seconds(entry.atime) : mtime, mtime).catch((err: Error) => this.warn(target, `times not restored: ${err.message}`));
  }
}

const PAGE = 64 * 1024;
const ZERO = Buffer.alloc(PAGE);

/** Writes a block at `position`, leaving holes where whole 64 KiB pages are zero (truncate sets the length). */
async function writeSparse(handle: fsp.FileHandle, block: Buffer, position: number): Promise<void> {
  let start = -1;
  for (let i = 0; i < block.length; i += PAGE) {
    const page = block.subarray(i, Math.min(block.length, i + PAGE));
    const zero = page.equals(ZERO.subarray(0, page.length));
    if (!zero && start < 0) start = i;
    if (zero && start >= 0) {
      await handle.write(block, start, i - start, position + start);
      start = -1;
    }
  }
  if (start >= 0) await handle.write(block, start, block.length - start, position + start);
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
