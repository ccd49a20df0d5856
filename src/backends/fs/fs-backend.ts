/**
 * The fs store: one file per block.
 *
 *     backend-fs fs DIR
 *
 * Layout under DIR: `cairn-fs.json` (marker and settings), `blocks/SS/KEY`
 * (SS: the key's first two characters), `tags/t-NAME`, `locks/t-NAME/`,
 * `tmp/`. Every file is written under a temporary name, fsynced, then
 * renamed (design.md, "Store backends"), files 0600, directories 0700.
 */
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage,
} from '../backend.js';
import { formatFields, runAdmin, type AdminTable, statsCommand } from '../admin-commands.js';
import { BackendError, fsErrorToBackendError } from '../errors.js';
import {
  checkBlockSize, checkKey, checkKeyList, checkOwner, checkTagName, checkTtl, isValidTagName, isValidKey,
} from '../names.js';
import { FsLocks } from './fs-locks.js';
import { listShardedPage, shardOf } from './sharded-listing.js';

export { parseFsCursor, shardOf } from './sharded-listing.js';
import { MEMBER_TAG, memberOf } from '../membership.js';
import { mkdirPrivate, readIfExists, replaceFile, syncDir, tempName, writeNewFile } from './atomic-file.js';

export const FS_MARKER = 'cairn-fs.json';
const STALE_TMP_MS = 3600_000;

export interface FsSettings {
  format: 'cairn-fs';
  version: 1;
  blockSize: number;
}


export class FsBackend implements Backend {
  private readonly blocksDir: string;
  private readonly tagsDir: string;
  private readonly tmpDir: string;
  private readonly locks: FsLocks;
  private readonly knownShards = new Set<string>();
  private readonly dirtyDirs = new Set<string>();
  private closed = false;
  /** The replicated set this archive belongs to (membership.ts). */
  private member: string | undefined;
  private readonly adminTable: AdminTable = {
    info: { usage: 'info', summary: 'describe this store', run: () => this.describe() },
    stats: statsCommand('blocks, bytes and tags held (walks the store)', () => this.stats()),
  };

  private constructor(readonly dir: string, private readonly settings: FsSettings, private readonly writable: boolean) {
    this.blocksDir = path.join(dir, 'blocks');
    this.tagsDir = path.join(dir, 'tags');
    this.tmpDir = path.join(dir, 'tmp');
    this.locks = new FsLocks(path.join(dir, 'locks'));
  }

  /** Opens DIR, creating the archive on first use; refuses a DIR that holds something else. */
  static async open(dir: string, options: { blockSize?: number } = {}): Promise<FsBackend> {
    const root = path.resolve(dir);
    let settings: FsSettings;
    try {
      settings = await FsBackend.readOrCreate(root, options.blockSize ?? 16 * 1024 * 1024);
    } catch (err) {
      throw fsErrorToBackendError(err, `cannot open fs archive ${root}`);
    }
    let writable = true;
    try {
      await fsp.access(root, constants.W_OK);
    } catch {
      writable = false;
    }
    const backend = new FsBackend(root, settings, writable);
    backend.member = memberOf(await readIfExists(backend.tagFile(MEMBER_TAG)).catch(() => null));
    if (writable) await backend.removeStaleTemporaries();
    return backend;
  }

  private static async readOrCreate(root: string, blockSize: number): Promise<FsSettings> {
    const marker = await readIfExists(path.join(root, FS_MARKER)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOTDIR') throw new BackendError('badRequest', `${root} is not a directory`);
      throw err;
    });
    if (marker !== null) {
      const parsed = JSON.parse(marker.toString('utf8')) as Partial<FsSettings>;
      if (parsed.format !== 'cairn-fs' || parsed.version !== 1 || typeof parsed.blockSize !== 'number') {
        throw new BackendError('corrupt', `${path.join(root, FS_MARKER)} is not a cairn fs archive marker of a known version`);
      }
      return parsed as FsSettings;
    }
    let entries: string[] = [];
    try {
      entries = await fsp.readdir(root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (entries.length > 0) {
      throw new BackendError('badRequest', `${root} holds files but no ${FS_MARKER}: it is not a cairn fs archive, refusing to use it`);
    }
    await mkdirPrivate(root);
    for (const sub of ['blocks', 'tags', 'locks', 'tmp']) await mkdirPrivate(path.join(root, sub));
    const settings: FsSettings = { format: 'cairn-fs', version: 1, blockSize };
    await replaceFile(path.join(root, FS_MARKER), Buffer.from(`${JSON.stringify(settings)}\n`), path.join(root, 'tmp'));
    await syncDir(root);
    return settings;
  }

  info(): BackendInfo {
    const info: BackendInfo = { backend: 'fs', blockSize: this.settings.blockSize, writable: this.writable, features: ['remove', 'listBlocks', 'admin'] };
    if (this.member !== undefined) info.member = this.member;
    return info;
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.checkOpen();
    checkKey(key);
    checkBlockSize(data, this.settings.blockSize);
    this.checkWritable();
    const shard = path.join(this.blocksDir, shardOf(key));
    const file = path.join(shard, key);
    try {
      if (await exists(file)) return;
      if (!this.knownShards.has(shard)) {
        await mkdirPrivate(shard);
        this.knownShards.add(shard);
        this.dirtyDirs.add(this.blocksDir);
      }
      const tmp = tempName(this.tmpDir);
      await writeNewFile(tmp, data);
      await fsp.rename(tmp, file);
      this.dirtyDirs.add(shard);
    } catch (err) {
      throw fsErrorToBackendError(err, `put ${key}`);
    }
  }

  async exists(key: string): Promise<boolean> {
    this.checkOpen();
    checkKey(key);
    return exists(this.blockFile(key));
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    this.checkOpen();
    return Promise.all(checkKeyList(keys).map((key) => exists(this.blockFile(key))));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.checkOpen();
    checkKey(key);
    try {
      return await readIfExists(this.blockFile(key));
    } catch (err) {
      throw fsErrorToBackendError(err, `get ${key}`);
    }
  }

  async remove(key: string): Promise<boolean> {
    this.checkOpen();
    checkKey(key);
    this.checkWritable();
    const file = this.blockFile(key);
    try {
      await fsp.unlink(file);
      this.dirtyDirs.add(path.dirname(file));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw fsErrorToBackendError(err, `remove ${key}`);
    }
  }

  /** Order: by shard, then by key (sharded-listing.ts). */
  async listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    this.checkOpen();
    return listShardedPage((shard) => readdirOrEmpty(shard === null ? this.blocksDir : path.join(this.blocksDir, shard)), cursor, limit);
  }

  async setTag(name: string, value: Uint8Array): Promise<void> {
    this.checkOpen();
    checkTagName(name);
    this.checkWritable();
    try {
      await replaceFile(this.tagFile(name), value, this.tmpDir);
      this.dirtyDirs.add(this.tagsDir);
      if (name === MEMBER_TAG) this.member = memberOf(value);
    } catch (err) {
      throw fsErrorToBackendError(err, `setTag ${name}`);
    }
  }

  async getTag(name: string): Promise<Uint8Array | null> {
    this.checkOpen();
    checkTagName(name);
    try {
      return await readIfExists(this.tagFile(name));
    } catch (err) {
      throw fsErrorToBackendError(err, `getTag ${name}`);
    }
  }

  async removeTag(name: string): Promise<boolean> {
    this.checkOpen();
    checkTagName(name);
    this.checkWritable();
    try {
      await fsp.unlink(this.tagFile(name));
      this.dirtyDirs.add(this.tagsDir);
      if (name === MEMBER_TAG) this.member = undefined;
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw fsErrorToBackendError(err, `removeTag ${name}`);
    }
  }

  async listTags(): Promise<string[]> {
    this.checkOpen();
    const entries = await readdirOrEmpty(this.tagsDir);
    return entries.filter((e) => e.startsWith('t-')).map((e) => e.slice(2)).filter(isValidTagName).sort();
  }

  async lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    checkTtl(ttlSeconds);
    this.checkWritable();
    return this.locks.acquire(name, owner, ttlSeconds).catch((err: unknown) => {
      throw fsErrorToBackendError(err, `lockTag ${name}`);
    });
  }

  async unlockTag(name: string, owner: string): Promise<void> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    await this.locks.release(name, owner).catch((err: unknown) => {
      throw fsErrorToBackendError(err, `unlockTag ${name}`);
    });
  }

  async tagLocked(name: string): Promise<string | null> {
    this.checkOpen();
    checkTagName(name);
    return this.locks.owner(name);
  }

  /** Block and tag files are fsynced before their rename; flush makes the renames durable. */
  async flush(): Promise<void> {
    this.checkOpen();
    const dirs = [...this.dirtyDirs];
    this.dirtyDirs.clear();
    try {
      await Promise.all(dirs.map(syncDir));
    } catch (err) {
      for (const dir of dirs) this.dirtyDirs.add(dir);
      throw fsErrorToBackendError(err, 'flush');
    }
  }

  async stats(): Promise<BackendStats> {
    this.checkOpen();
    let blocks = 0;
    let bytes = 0;
    for (const shard of await readdirOrEmpty(this.blocksDir)) {
      const dir = path.join(this.blocksDir, shard);
      for (const name of await readdirOrEmpty(dir)) {
        if (!isValidKey(name)) continue;
        const st = await fsp.stat(path.join(dir, name)).catch(() => null);
        if (st === null) continue;
        blocks += 1;
        bytes += st.size;
      }
    }
    return { blocks, bytes, tags: (await this.listTags()).length };
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.checkOpen();
    return runAdmin('fs', this.adminTable, command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.writable) await this.flush();
    this.closed = true;
  }

  private describe(): AdminResult {
    const data = { backend: 'fs', directory: this.dir, blockSize: this.settings.blockSize, writable: this.writable, formatVersion: this.settings.version };
    return { text: formatFields(data), data };
  }

  private blockFile(key: string): string {
    return path.join(this.blocksDir, shardOf(key), key);
  }

  private tagFile(name: string): string {
    return path.join(this.tagsDir, `t-${name}`);
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError('unavailable', `the fs archive ${this.dir} is closed`);
  }

  private checkWritable(): void {
    if (!this.writable) throw new BackendError('readOnly', `the fs archive ${this.dir} is not writable`);
  }

  private async removeStaleTemporaries(): Promise<void> {
    const now = Date.now();
    for (const name of await readdirOrEmpty(this.tmpDir)) {
      const file = path.join(this.tmpDir, name);
      const st = await fsp.stat(file).catch(() => null);
      if (st !== null && now - st.mtimeMs > STALE_TMP_MS) await fsp.rm(file, { force: true });
    }
  }
}


async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fsErrorToBackendError(err, 'exists');
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
