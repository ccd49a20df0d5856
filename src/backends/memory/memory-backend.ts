/**
 * The in-memory store, for tests:
 *
 *     backend-fs memory [BLOCK-SIZE]
 *
 * Several `MemoryBackend`s may share one `MemoryStore` (concurrent clients of
 * one archive); nothing survives the process.
 */
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage,
} from '../backend.js';
import { formatFields, runAdmin, type AdminTable, statsCommand } from '../admin-commands.js';
import { BackendError } from '../errors.js';
import { MEMBER_TAG, memberOf } from '../membership.js';
import { acquireLock, isLive, releaseLock, type LockRecord } from '../locks.js';
import {
  checkBlockSize, checkCursor, checkKey, checkKeyList, checkListLimit, checkOwner, checkTagName, checkTtl,
} from '../names.js';

export const DEFAULT_BLOCK_SIZE = 16 * 1024 * 1024;

export class MemoryStore {
  readonly blocks = new Map<string, Uint8Array>();
  readonly tags = new Map<string, Uint8Array>();
  readonly locks = new Map<string, LockRecord>();
  writable = true;

  constructor(readonly blockSize = DEFAULT_BLOCK_SIZE) {}
}

export class MemoryBackend implements Backend {
  private closed = false;
  private readonly adminTable: AdminTable = {
    info: { usage: 'info', summary: 'describe this store', run: () => this.describe() },
    stats: statsCommand('blocks and bytes held', () => this.stats()),
  };

  constructor(readonly store = new MemoryStore()) {}

  info(): BackendInfo {
    const info: BackendInfo = { backend: 'memory', blockSize: this.store.blockSize, writable: this.store.writable, features: ['remove', 'listBlocks', 'admin'] };
    const member = memberOf(this.store.tags.get(MEMBER_TAG));
    if (member !== undefined) info.member = member;
    return info;
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.open();
    checkKey(key);
    checkBlockSize(data, this.store.blockSize);
    this.writable();
    if (!this.store.blocks.has(key)) this.store.blocks.set(key, new Uint8Array(data));
  }

  async exists(key: string): Promise<boolean> {
    this.open();
    return this.store.blocks.has(checkKey(key));
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    this.open();
    return checkKeyList(keys).map((key) => this.store.blocks.has(key));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.open();
    const data = this.store.blocks.get(checkKey(key));
    return data === undefined ? null : new Uint8Array(data);
  }

  async remove(key: string): Promise<boolean> {
    this.open();
    checkKey(key);
    this.writable();
    return this.store.blocks.delete(key);
  }

  async listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    this.open();
    const after = checkCursor(cursor);
    checkListLimit(limit);
    const keys = [...this.store.blocks.keys()].filter((k) => after === null || k > after).sort();
    const page = keys.slice(0, limit);
    return [page, keys.length > limit ? (page[page.length - 1] as string) : null];
  }

  async setTag(name: string, value: Uint8Array): Promise<void> {
    this.open();
    checkTagName(name);
    this.writable();
    this.store.tags.set(name, new Uint8Array(value));
  }

  async getTag(name: string): Promise<Uint8Array | null> {
    this.open();
    const value = this.store.tags.get(checkTagName(name));
    return value === undefined ? null : new Uint8Array(value);
  }

  async removeTag(name: string): Promise<boolean> {
    this.open();
    checkTagName(name);
    this.writable();
    return this.store.tags.delete(name);
  }

  async listTags(): Promise<string[]> {
    this.open();
    return [...this.store.tags.keys()].sort();
  }

  async lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.open();
    checkTagName(name);
    checkOwner(owner);
    checkTtl(ttlSeconds);
    const record = acquireLock(this.store.locks.get(name) ?? null, owner, ttlSeconds);
    if (record === null) return false;
    this.store.locks.set(name, record);
    return true;
  }

  async unlockTag(name: string, owner: string): Promise<void> {
    this.open();
    checkTagName(name);
    checkOwner(owner);
    if (releaseLock(this.store.locks.get(name) ?? null, owner)) this.store.locks.delete(name);
  }

  async tagLocked(name: string): Promise<string | null> {
    this.open();
    const lock = this.store.locks.get(checkTagName(name));
    return isLive(lock) ? lock.owner : null;
  }

  async flush(): Promise<void> {
    this.open();
  }

  async stats(): Promise<BackendStats> {
    this.open();
    let bytes = 0;
    for (const data of this.store.blocks.values()) bytes += data.byteLength;
    return { blocks: this.store.blocks.size, bytes, tags: this.store.tags.size };
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.open();
    return runAdmin('memory', this.adminTable, command, args);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private describe(): AdminResult {
    const data = { backend: 'memory', blockSize: this.store.blockSize, writable: this.store.writable, persistent: false };
    return { text: formatFields(data), data };
  }

  private open(): void {
    if (this.closed) throw new BackendError('unavailable', 'the memory archive is closed');
  }

  private writable(): void {
    if (!this.store.writable) throw new BackendError('readOnly', 'the memory archive is read-only');
  }
}
