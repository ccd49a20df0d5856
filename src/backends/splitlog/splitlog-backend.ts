/**
 * The splitlog store: append-only logs with a SQLite index that can always
 * be rebuilt (issue 3).
 *
 *     backend-fs splitlog LOGDIR METADATA.sqlite [MAX-LOGFILE-BYTES]
 *
 * Blocks, tags, removals and settings are records appended to
 * `LOGDIR/log-NNNNNN` (record.ts); METADATA.sqlite indexes them
 * (metadata.ts). One process writes at a time (writer-lock.ts); any number
 * read. When the metadata file is missing or unusable while logs exist, the
 * store opens in a degraded state: the greeting is read-only with only the
 * `admin` feature, every operation answers `unavailable` with a message
 * naming the fix, and the admin commands `help`, `info`, `check` and
 * `reindex` work; `reindex` rebuilds the file and the session carries on
 * normally.
 */
import { accessSync, constants, existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage, LogLevel,
} from '../backend.js';
import { runAdmin } from '../admin-commands.js';
import { BackendError, fsErrorToBackendError } from '../errors.js';
import type { BackendContext } from '../factory.js';
import { acquireLock, isLive, releaseLock } from '../locks.js';
import {
  checkBlockSize, checkCursor, checkKey, checkKeyList, checkListLimit, checkOwner, checkTagName, checkTtl,
} from '../names.js';
import { mkdirPrivate } from '../fs/atomic-file.js';
import { MEMBER_TAG, memberOf } from '../membership.js';
import { joinIdentifier } from '../../protocol/identifier.js';
import { LogReader, listLogs, logName } from './log-files.js';
import { Metadata, MetadataUnusable, type Location } from './metadata.js';
import { decodeRecord, isRemoval, kindOf, RecordType, type DecodedRecord, type Kind } from './record.js';
import { DEFAULT_MAX_LOGFILE_BYTES, settingsFrom, type Settings } from './settings.js';
import { SplitlogWriter, type WriterHost } from './splitlog-writer.js';
import { splitlogAdminTable, DEGRADED_COMMANDS } from './splitlog-admin.js';

export interface SplitlogConfig {
  logDir: string;
  metaFile: string;
  /** MAX-LOGFILE-BYTES from the identifier, or null when not given. */
  maxLogfileBytes: number | null;
}

export class SplitlogBackend implements Backend, WriterHost {
  /** Null while degraded (see the file comment). */
  private metadata: Metadata | null;
  private writerState: SplitlogWriter | null = null;
  settings: Settings = settingsFrom(new Map());
  readonly reader: LogReader;
  private closed = false;
  readonly identifier: string;
  /** The replicated set this archive belongs to (membership.ts). */
  private member: string | undefined;

  private constructor(
    readonly config: SplitlogConfig,
    metadata: Metadata | null,
    /** Why the store is degraded, or null. */
    public degraded: string | null,
    readonly filesWritable: boolean,
    private readonly context: BackendContext,
  ) {
    this.metadata = metadata;
    this.reader = new LogReader(config.logDir);
    this.identifier = joinIdentifier(['backend-fs', 'splitlog', config.logDir, config.metaFile,
      ...(config.maxLogfileBytes === null ? [] : [String(config.maxLogfileBytes)])]);
    if (metadata !== null) this.attach(metadata);
  }

  static async open(given: SplitlogConfig, context: BackendContext): Promise<SplitlogBackend> {
    const config = { ...given, logDir: path.resolve(given.logDir), metaFile: path.resolve(given.metaFile) };
    const { logDir, metaFile } = config;
    let logs: number[];
    try {
      logs = listLogs(logDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new BackendError('badRequest', `${logDir} is not a directory`);
      throw fsErrorToBackendError(err, `cannot read ${logDir}`);
    }
    let metadata: Metadata | null = null;
    let degraded: string | null = null;
    if (!existsSync(metaFile) && logs.length === 0) {
      const others = existsSync(logDir) ? readdirSync(logDir) : [];
      if (others.length > 0) {
        throw new BackendError('badRequest', `${logDir} holds files but no splitlog logs (and ${metaFile} does not exist): it is not a splitlog archive, refusing to use it`);
      }
      try {
        await mkdirPrivate(logDir);
        await mkdirPrivate(path.dirname(metaFile));
        metadata = Metadata.open(metaFile, { create: true });
      } catch (err) {
        throw err instanceof MetadataUnusable ? new BackendError('internal', err.message) : fsErrorToBackendError(err, `cannot create the splitlog ${logDir}`);
      }
    } else if (!existsSync(metaFile)) {
      degraded = `the metadata file ${metaFile} does not exist, but ${logDir} holds ${logs.length} log${logs.length === 1 ? '' : 's'}`;
    } else {
      try {
        metadata = Metadata.open(metaFile, { create: false });
      } catch (err) {
        if (!(err instanceof MetadataUnusable)) throw err;
        if (err.newer) throw new BackendError('unsupported', err.message);
        degraded = err.message;
      }
    }
    if (metadata !== null && logs.length === 0 && !existsSync(logDir)) {
      const indexed = metadata.blockStats().blocks;
      metadata.close();
      if (indexed > 0) throw new BackendError('corrupt', `${logDir} does not exist, but ${metaFile} indexes ${indexed} blocks in it: is LOGDIR right?`);
      await mkdirPrivate(logDir);
      metadata = Metadata.open(metaFile, { create: false });
    }
    let filesWritable = true;
    try {
      accessSync(logDir, constants.W_OK);
      if (existsSync(metaFile)) accessSync(metaFile, constants.W_OK);
    } catch {
      filesWritable = false;
    }
    const backend = new SplitlogBackend(config, metadata, degraded, filesWritable, context);
    if (degraded !== null) {
      context.log('warning', backend.degradedMessage());
    } else if (filesWritable && !backend.settings.writeProtected) {
      await backend.writer.recoverIfFree();
    }
    if (degraded === null) backend.member = memberOf(await backend.getTag(MEMBER_TAG).catch(() => null));
    return backend;
  }

  // WriterHost

  get meta(): Metadata {
    if (this.metadata === null) throw new BackendError('unavailable', this.degradedMessage());
    return this.metadata;
  }

  get logDir(): string {
    return this.config.logDir;
  }

  get writer(): SplitlogWriter {
    if (this.writerState === null) throw new BackendError('unavailable', this.degradedMessage());
    return this.writerState;
  }

  maxLogfileBytes(): number {
    return this.config.maxLogfileBytes ?? this.settings.maxLogfileSize ?? DEFAULT_MAX_LOGFILE_BYTES;
  }

  commitInterval(): number {
    return this.settings.commitInterval;
  }

  reloadSettings(): boolean {
    this.settings = settingsFrom(this.meta.configValues());
    return this.settings.writeProtected;
  }

  log(level: LogLevel, text: string): void {
    this.context.log(level, `splitlog ${this.config.logDir}: ${text}`);
  }

  /** Starts using a (new or rebuilt) metadata file. */
  attach(metadata: Metadata): void {
    this.metadata = metadata;
    this.degraded = null;
    this.writerState = new SplitlogWriter(this);
    this.reloadSettings();
  }

  /** Back to degraded after a failed rebuild. */
  detach(reason: string): void {
    this.metadata?.close();
    this.metadata = null;
    this.writerState = null;
    this.degraded = reason;
  }

  degradedMessage(): string {
    return `${this.degraded ?? 'the metadata is unusable'}. Rebuild it from the logs with: archive-admin ${shellQuote(this.identifier)} reindex`;
  }

  // Backend

  info(): BackendInfo {
    if (this.degraded !== null) return { backend: 'splitlog', blockSize: this.settings.blockSize, writable: false, features: ['admin'] };
    const info: BackendInfo = {
      backend: 'splitlog',
      blockSize: this.settings.blockSize,
      writable: this.filesWritable && !this.settings.writeProtected,
      features: ['remove', 'listBlocks', 'admin'],
    };
    if (this.member !== undefined) info.member = this.member;
    return info;
  }

  /** Not `async`: a snapshot puts tens of thousands of blocks, and the promise it returns is the append's own. */
  put(key: string, data: Uint8Array): Promise<void> {
    try {
      this.usable();
      checkKey(key);
      checkBlockSize(data, this.settings.blockSize);
      this.checkWritable();
      // A block already stored returns at once, without waiting for another process's writer lock;
      // while this process holds the lock, the check below (which then runs at once) is enough.
      if (!this.writer.holdsLock && this.locate('block', key) !== null) return Promise.resolve();
      return this.writer.append(RecordType.BlockPut, key, data, {
        // Another process may have stored it while we waited for the writer lock.
        check: () => this.locate('block', key) === null,
      }).then(noop);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async exists(key: string): Promise<boolean> {
    this.usable();
    return this.locate('block', checkKey(key)) !== null;
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    this.usable();
    // The lookups share one read transaction (Metadata.lookup).
    return checkKeyList(keys).map((key) => this.present('block', key));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.usable();
    const record = await this.readRecord('block', checkKey(key));
    return record === null ? null : record.data;
  }

  async remove(key: string): Promise<boolean> {
    this.usable();
    checkKey(key);
    this.checkWritable();
    if (this.locate('block', key) === null) return false;
    const loc = await this.writer.append(RecordType.BlockRemoved, key, new Uint8Array(0), {
      check: () => this.locate('block', key) !== null,
    });
    return loc !== null;
  }

  /** Order: by key; the cursor is the last key returned. */
  async listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    this.usable();
    const after = checkCursor(cursor);
    checkListLimit(limit);
    await this.commitIfWriting();
    const found = this.meta.listBlocks(after ?? '', limit + 1);
    const keys = found.slice(0, limit);
    return [keys, found.length > limit ? (keys[keys.length - 1] as string) : null];
  }

  async setTag(name: string, value: Uint8Array): Promise<void> {
    this.usable();
    checkTagName(name);
    this.checkWritable();
    await this.writer.append(RecordType.TagSet, name, value);
    if (name === MEMBER_TAG) this.member = memberOf(value);
  }

  async getTag(name: string): Promise<Uint8Array | null> {
    this.usable();
    const record = await this.readRecord('tag', checkTagName(name));
    return record === null ? null : record.data;
  }

  async removeTag(name: string): Promise<boolean> {
    this.usable();
    checkTagName(name);
    this.checkWritable();
    if (this.locate('tag', name) === null) return false;
    const loc = await this.writer.append(RecordType.TagRemoved, name, new Uint8Array(0), {
      check: () => this.locate('tag', name) !== null,
    });
    if (name === MEMBER_TAG) this.member = undefined;
    return loc !== null;
  }

  async listTags(): Promise<string[]> {
    this.usable();
    await this.commitIfWriting();
    return this.meta.tagNames();
  }

  async lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.usable();
    checkTagName(name);
    checkOwner(owner);
    checkTtl(ttlSeconds);
    this.checkWritable();
    const { meta } = this;
    return this.inTransaction(`lockTag ${name}`, () => {
      const row = meta.tagLock(name);
      const next = acquireLock(row === undefined ? null : { owner: row.owner, expiresAt: row.expires }, owner, ttlSeconds);
      if (next === null) return false;
      meta.setTagLock(name, { owner: next.owner, expires: next.expiresAt });
      return true;
    });
  }

  async unlockTag(name: string, owner: string): Promise<void> {
    this.usable();
    checkTagName(name);
    checkOwner(owner);
    const { meta } = this;
    this.inTransaction(`unlockTag ${name}`, () => {
      const row = meta.tagLock(name);
      if (releaseLock(row === undefined ? null : { owner: row.owner, expiresAt: row.expires }, owner)) meta.dropTagLock(name);
    });
  }

  async tagLocked(name: string): Promise<string | null> {
    this.usable();
    const row = this.meta.tagLock(checkTagName(name));
    const lock = row === undefined ? null : { owner: row.owner, expiresAt: row.expires };
    return isLive(lock) ? lock.owner : null;
  }

  async flush(): Promise<void> {
    this.usable();
    await this.writer.commit();
  }

  async stats(): Promise<BackendStats> {
    this.usable();
    await this.commitIfWriting();
    const { blocks, bytes } = this.meta.blockStats();
    return { blocks, bytes, tags: this.meta.tagNames().length, logs: listLogs(this.logDir).length };
  }

  async admin(command: string, args: string[]): Promise<AdminResult> {
    this.checkOpen();
    if (this.degraded !== null && !DEGRADED_COMMANDS.includes(command)) {
      throw new BackendError('unavailable', `${this.degradedMessage()} (only ${DEGRADED_COMMANDS.join(', ')} work until then)`);
    }
    if (this.degraded === null) await this.commitIfWriting();
    return runAdmin('splitlog', splitlogAdminTable(this), command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.writerState !== null) await this.writerState.close();
    } finally {
      await this.reader.closeAll();
      this.metadata?.close();
    }
  }

  // helpers

  /** Reopens the metadata for a rebuild while degraded: creates it, or sets an unreadable one aside. */
  openForReindex(): Metadata {
    const file = this.config.metaFile;
    try {
      return Metadata.open(file, { create: true, markForReindex: true });
    } catch (err) {
      if (!(err instanceof MetadataUnusable) || err.newer || !statSync(file).isFile()) throw new BackendError('badRequest', (err as Error).message);
      const aside = `${file}.unreadable-${Date.now()}`;
      renameSync(file, aside);
      for (const suffix of ['-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
      this.log('warning', `set the unreadable metadata file aside as ${aside}`);
      return Metadata.open(file, { create: true, markForReindex: true });
    }
  }

  private async commitIfWriting(): Promise<void> {
    if (this.writerState?.holdsLock === true) await this.writerState.commit();
  }

  /** The current place of a name: the uncommitted overlay first, then the metadata. */
  private locate(kind: Kind, name: string): Location | null {
    const pending = this.writer.lookup(kind, name);
    if (pending !== undefined) return pending;
    return this.meta.lookup(kind, name);
  }

  /** Whether a name has a current place: `locate` without making the location. */
  private present(kind: Kind, name: string): boolean {
    const pending = this.writer.lookup(kind, name);
    if (pending !== undefined) return pending !== null;
    return this.meta.has(kind, name);
  }

  private async readRecord(kind: Kind, name: string): Promise<DecodedRecord | null> {
    for (let attempt = 0; ; attempt += 1) {
      const loc = this.locate(kind, name);
      if (loc === null) return null;
      let problem: string;
      try {
        const record = decodeRecord(await this.reader.read(loc));
        if (typeof record !== 'string' && record.name === name && kindOf(record.header.type) === kind && !isRemoval(record.header.type)) {
          return record;
        }
        problem = typeof record === 'string' ? record : `holds ${record.name} instead`;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsErrorToBackendError(err, `reading ${kind} ${name}`);
        problem = 'is in a log that does not exist';
      }
      // Compaction in another process may have moved it: look again once.
      const again = this.locate(kind, name);
      if (attempt === 0 && (again === null || again.log !== loc.log || again.offset !== loc.offset)) continue;
      throw new BackendError('corrupt', `${kind} ${name}: the record at ${logName(loc.log)} offset ${loc.offset} ${problem === 'checksum mismatch' ? 'failed its checksum' : problem}`);
    }
  }

  private inTransaction<T>(what: string, fn: () => T): T {
    try {
      return this.meta.immediate(fn);
    } catch (err) {
      if (err instanceof BackendError) throw err;
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY') throw new BackendError('unavailable', `${what}: the metadata is busy: ${(err as Error).message}`);
      throw new BackendError('internal', `${what}: ${(err as Error).message}`);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError('unavailable', `the splitlog archive ${this.config.logDir} is closed`);
  }

  private usable(): void {
    this.checkOpen();
    if (this.degraded !== null) throw new BackendError('unavailable', this.degradedMessage());
  }

  private checkWritable(): void {
    if (!this.filesWritable) throw new BackendError('readOnly', `the splitlog ${this.config.logDir} is not writable by this user`);
    if (this.settings.writeProtected) throw new BackendError('readOnly', `the splitlog ${this.config.logDir} is write-protected`);
  }
}

function noop(): void {}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
