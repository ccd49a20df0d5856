/**
 * The sftp store: the fs store's layout and guarantees on a remote host.
 *
 *     backend-sftp [--port N] [--identity FILE] [--known-hosts FILE | --no-host-key-check]
 *                  [--connections N] [--timeout SECONDS] USER@HOST:PATH
 *
 * Layout under PATH, exactly as `backend-fs fs` (fs-backend.ts): the marker
 * `cairn-fs.json`, `blocks/SS/KEY`, `tags/t-NAME`, `locks/t-NAME/`, `tmp/`;
 * so either can open an archive the other made. Every file is written under
 * a temporary name in `tmp/` (mode 0600, fsynced where the server offers
 * fsync@openssh.com), then renamed (design.md, "Store backends").
 */
import { randomBytes } from 'node:crypto';
import { posix as path } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import type { AdminResult, Backend, BackendInfo, BackendStats, BlockPage } from '../backend.js';
import { formatFields, runAdmin, type AdminTable, statsCommand } from '../admin-commands.js';
import { BackendError } from '../errors.js';
import { FS_MARKER, shardOf, type FsSettings } from '../fs/fs-backend.js';
import { listShardedPage } from '../fs/sharded-listing.js';
import {
  checkBlockSize, checkKey, checkKeyList, checkOwner, checkTagName, checkTtl, isValidKey, isValidTagName,
} from '../names.js';
import type { SftpConfig } from './config.js';
import { SFTP_STATUS } from './errors.js';
import { SftpLocks, type LockMethod } from './sftp-locks.js';
import { SftpPool } from './sftp-pool.js';
import { mkdir, readFile, readdir, renameNoReplace, renameReplace, stat, unlink, writeNewFile } from './sftp-ops.js';

const DEFAULT_BLOCK_SIZE = 16 * 1024 * 1024;
const STALE_TMP_SECONDS = 3600;

/** What the server offers, found out once at open. */
interface ServerTraits {
  fsync: boolean;
  posixRename: boolean;
  lockMethod: LockMethod;
  writable: boolean;
}

/** ssh2 keeps the extensions the server announced here (not in its type declarations). */
function extensionsOf(sftp: SFTPWrapper): Record<string, string> {
  return (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
}

export class SftpBackend implements Backend {
  private readonly knownShards = new Set<string>();
  private readonly locks: SftpLocks;
  private closed = false;
  private readonly adminTable: AdminTable = {
    info: { usage: 'info', summary: 'describe this store and the server', run: () => this.describe() },
    stats: statsCommand('blocks, bytes and tags held (walks the store)', () => this.stats()),
  };

  private constructor(
    private readonly pool: SftpPool,
    private readonly config: SftpConfig,
    private readonly settings: FsSettings,
    private readonly traits: ServerTraits,
  ) {
    this.locks = new SftpLocks(this.sub('locks'), traits.lockMethod, traits.fsync);
  }

  /** Connects, opens PATH (creating the archive on first use) and learns what the server offers. */
  static async open(config: SftpConfig, options: { blockSize?: number } = {}): Promise<SftpBackend> {
    const pool = new SftpPool(config);
    try {
      const { settings, traits } = await pool.run(`open ${config.path}`, 'idempotent', async (sftp) => {
        const ext = extensionsOf(sftp);
        const fsync = ext['fsync@openssh.com'] !== undefined;
        const settings = await readOrCreate(sftp, config.path, options.blockSize ?? DEFAULT_BLOCK_SIZE, fsync);
        const probe = await probeRename(sftp, path.join(config.path, 'tmp'), fsync);
        return {
          settings,
          traits: {
            fsync,
            posixRename: ext['posix-rename@openssh.com'] !== undefined,
            lockMethod: probe === 'replaces' ? 'exclusive-create' : 'rename',
            writable: probe !== 'read-only',
          } satisfies ServerTraits,
        };
      });
      const backend = new SftpBackend(pool, config, settings, traits);
      if (traits.writable) await backend.removeStaleTemporaries();
      return backend;
    } catch (err) {
      await pool.close();
      throw err;
    }
  }

  info(): BackendInfo {
    return { backend: 'sftp', blockSize: this.settings.blockSize, writable: this.traits.writable, features: ['remove', 'listBlocks', 'admin'] };
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.checkOpen();
    checkKey(key);
    checkBlockSize(data, this.settings.blockSize);
    this.checkWritable();
    const shard = path.join(this.sub('blocks'), shardOf(key));
    const file = path.join(shard, key);
    await this.pool.run(`put ${key}`, 'idempotent', async (sftp) => {
      if ((await stat(sftp, file)) !== null) return;
      if (!this.knownShards.has(shard)) {
        await mkdir(sftp, shard);
        this.knownShards.add(shard);
      }
      const tmp = this.tempName();
      try {
        await writeNewFile(sftp, tmp, data, this.traits.fsync);
        await renameNoReplace(sftp, tmp, file);
      } catch (err) {
        await unlink(sftp, tmp).catch(() => false);
        // Another client stored the same block meanwhile: same key, same content.
        if ((await stat(sftp, file)) !== null) return;
        throw err;
      }
    });
  }

  async exists(key: string): Promise<boolean> {
    this.checkOpen();
    checkKey(key);
    return this.pool.run(`exists ${key}`, 'idempotent', async (sftp) => (await stat(sftp, this.blockFile(key))) !== null);
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    this.checkOpen();
    return Promise.all(checkKeyList(keys).map((key) => this.exists(key)));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.checkOpen();
    checkKey(key);
    return this.pool.run(`get ${key}`, 'idempotent', (sftp) => readFile(sftp, this.blockFile(key)));
  }

  /** Not retried once sent: a retry could answer false for a block the first attempt removed. */
  async remove(key: string): Promise<boolean> {
    this.checkOpen();
    checkKey(key);
    this.checkWritable();
    return this.pool.run(`remove ${key}`, 'before-send', (sftp) => unlink(sftp, this.blockFile(key)));
  }

  /** Order and cursor as the fs store: by shard, then key; the cursor is "SHARD/KEY". */
  async listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    this.checkOpen();
    const blocks = this.sub('blocks');
    return listShardedPage(async (shard) => {
      const dir = shard === null ? blocks : path.join(blocks, shard);
      return (await this.pool.run('listBlocks', 'idempotent', (sftp) => readdir(sftp, dir))).map((e) => e.filename);
    }, cursor, limit);
  }

  async setTag(name: string, value: Uint8Array): Promise<void> {
    this.checkOpen();
    checkTagName(name);
    this.checkWritable();
    const file = this.tagFile(name);
    await this.pool.run(`setTag ${name}`, 'idempotent', async (sftp) => {
      const tmp = this.tempName();
      try {
        await writeNewFile(sftp, tmp, value, this.traits.fsync);
        if (this.traits.posixRename) {
          await renameReplace(sftp, tmp, file);
        } else {
          // Without posix-rename@openssh.com the replacement is not atomic: a
          // crash between these two requests leaves the tag absent.
          await unlink(sftp, file);
          await renameNoReplace(sftp, tmp, file);
        }
      } catch (err) {
        await unlink(sftp, tmp).catch(() => false);
        throw err;
      }
    });
  }

  async getTag(name: string): Promise<Uint8Array | null> {
    this.checkOpen();
    checkTagName(name);
    return this.pool.run(`getTag ${name}`, 'idempotent', (sftp) => readFile(sftp, this.tagFile(name)));
  }

  async removeTag(name: string): Promise<boolean> {
    this.checkOpen();
    checkTagName(name);
    this.checkWritable();
    return this.pool.run(`removeTag ${name}`, 'before-send', (sftp) => unlink(sftp, this.tagFile(name)));
  }

  async listTags(): Promise<string[]> {
    this.checkOpen();
    const entries = await this.pool.run('listTags', 'idempotent', (sftp) => readdir(sftp, this.sub('tags')));
    return entries.map((e) => e.filename).filter((e) => e.startsWith('t-')).map((e) => e.slice(2)).filter(isValidTagName).sort();
  }

  /** Retrying is safe: if a lost reply hid our win, the retry finds our own lock and renews it. */
  async lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    checkTtl(ttlSeconds);
    this.checkWritable();
    return this.pool.run(`lockTag ${name}`, 'idempotent', (sftp) => this.locks.acquire(sftp, name, owner, ttlSeconds));
  }

  async unlockTag(name: string, owner: string): Promise<void> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    await this.pool.run(`unlockTag ${name}`, 'idempotent', (sftp) => this.locks.release(sftp, name, owner));
  }

  async tagLocked(name: string): Promise<string | null> {
    this.checkOpen();
    checkTagName(name);
    return this.pool.run(`tagLocked ${name}`, 'idempotent', (sftp) => this.locks.owner(sftp, name));
  }

  /**
   * Every file was fsynced (fsync@openssh.com) before its rename was
   * acknowledged, and the sequencer runs flush after everything before it.
   * SFTP cannot fsync a directory, so the renames are as durable as the
   * server's filesystem makes them (info says so).
   */
  async flush(): Promise<void> {
    this.checkOpen();
  }

  async stats(): Promise<BackendStats> {
    this.checkOpen();
    let blocks = 0;
    let bytes = 0;
    const root = this.sub('blocks');
    for (const shard of await this.pool.run('stats', 'idempotent', (sftp) => readdir(sftp, root))) {
      const entries = await this.pool.run('stats', 'idempotent', (sftp) => readdir(sftp, path.join(root, shard.filename)));
      for (const entry of entries) {
        if (!isValidKey(entry.filename)) continue;
        blocks += 1;
        bytes += entry.attrs.size;
      }
    }
    return { blocks, bytes, tags: (await this.listTags()).length };
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.checkOpen();
    return runAdmin('sftp', this.adminTable, command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private describe(): AdminResult {
    const { config, traits } = this;
    const data = {
      backend: 'sftp',
      remote: `${config.user}@${config.host}:${config.path}`,
      port: config.port,
      blockSize: this.settings.blockSize,
      writable: traits.writable,
      formatVersion: this.settings.version,
      connections: config.connections,
      timeoutSeconds: config.timeoutSeconds,
      hostKeyCheck: config.knownHosts === null ? 'off (--no-host-key-check)' : config.knownHosts,
      fileSync: traits.fsync ? 'fsync@openssh.com before every rename' : 'not offered by the server: files are not fsynced',
      directorySync: 'not possible over SFTP: renames are as durable as the server filesystem makes them',
      tagReplace: traits.posixRename ? 'atomic (posix-rename@openssh.com)' : 'remove then rename (not atomic)',
      lockMethod: traits.lockMethod === 'rename' ? 'rename without replace (atomic create)' : 'exclusive create (wx)',
    };
    return { text: formatFields(data), data };
  }

  private sub(name: string): string {
    return path.join(this.config.path, name);
  }

  private blockFile(key: string): string {
    return path.join(this.sub('blocks'), shardOf(key), key);
  }

  private tagFile(name: string): string {
    return path.join(this.sub('tags'), `t-${name}`);
  }

  private tempName(): string {
    return path.join(this.sub('tmp'), `tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError('unavailable', `the sftp archive ${this.config.user}@${this.config.host}:${this.config.path} is closed`);
  }

  private checkWritable(): void {
    if (!this.traits.writable) throw new BackendError('readOnly', `the sftp archive ${this.config.user}@${this.config.host}:${this.config.path} is not writable`);
  }

  private async removeStaleTemporaries(): Promise<void> {
    const tmpDir = this.sub('tmp');
    await this.pool.run('remove stale temporaries', 'idempotent', async (sftp) => {
      const now = Date.now() / 1000;
      const stale = (await readdir(sftp, tmpDir)).filter((e) => now - e.attrs.mtime > STALE_TMP_SECONDS);
      await Promise.all(stale.map((e) => unlink(sftp, path.join(tmpDir, e.filename))));
    });
  }
}

/** fs-backend.ts's readOrCreate, over SFTP: read the marker, or create the archive in an empty or missing directory. */
async function readOrCreate(sftp: SFTPWrapper, root: string, blockSize: number, fsync: boolean): Promise<FsSettings> {
  const markerFile = path.join(root, FS_MARKER);
  const marker = await readFile(sftp, markerFile);
  if (marker !== null) return parseMarker(marker, markerFile);
  const entries = await readdir(sftp, root);
  if (entries.some((e) => e.filename !== '.' && e.filename !== '..')) {
    throw new BackendError('badRequest', `${root} holds files but no ${FS_MARKER}: it is not a cairn fs archive, refusing to use it`);
  }
  let prefix = root.startsWith('/') ? '/' : '';
  for (const part of root.split('/').filter((p) => p !== '' && p !== '.')) {
    prefix = path.join(prefix, part);
    await mkdir(sftp, prefix);
  }
  for (const sub of ['blocks', 'tags', 'locks', 'tmp']) await mkdir(sftp, path.join(root, sub));
  const settings: FsSettings = { format: 'cairn-fs', version: 1, blockSize };
  const tmp = path.join(root, 'tmp', `tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
  await writeNewFile(sftp, tmp, Buffer.from(`${JSON.stringify(settings)}\n`), fsync);
  try {
    await renameNoReplace(sftp, tmp, markerFile);
  } catch (err) {
    await unlink(sftp, tmp).catch(() => false);
    const raced = await readFile(sftp, markerFile);
    if (raced === null) throw err;
    return parseMarker(raced, markerFile);
  }
  return settings;
}

function parseMarker(marker: Buffer, file: string): FsSettings {
  let parsed: Partial<FsSettings> = {};
  try {
    parsed = JSON.parse(marker.toString('utf8')) as Partial<FsSettings>;
  } catch {
    // reported below
  }
  if (parsed.format !== 'cairn-fs' || parsed.version !== 1 || typeof parsed.blockSize !== 'number') {
    throw new BackendError('corrupt', `${file} is not a cairn fs archive marker of a known version`);
  }
  return parsed as FsSettings;
}

/**
 * Finds out how the server's rename treats an existing target: `keeps` (SFTP
 * v3, OpenSSH) lets locks use rename as an atomic create; `replaces` needs
 * exclusive create instead; `read-only` when nothing can be written.
 */
async function probeRename(sftp: SFTPWrapper, tmpDir: string, fsync: boolean): Promise<'keeps' | 'replaces' | 'read-only'> {
  const base = path.join(tmpDir, `probe-${process.pid}-${randomBytes(6).toString('hex')}`);
  const [a, b, target] = [`${base}-a`, `${base}-b`, `${base}-t`];
  try {
    await writeNewFile(sftp, a, Buffer.from('a'), fsync);
  } catch (err) {
    if ((err as { code?: unknown }).code === SFTP_STATUS.PERMISSION_DENIED) return 'read-only';
    throw err;
  }
  try {
    await writeNewFile(sftp, b, Buffer.from('b'), false);
    await renameNoReplace(sftp, a, target);
    try {
      await renameNoReplace(sftp, b, target);
      return 'replaces';
    } catch {
      return 'keeps';
    }
  } finally {
    await Promise.all([a, b, target].map((f) => unlink(sftp, f).catch(() => false)));
  }
}
