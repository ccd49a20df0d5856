/**
 * The replicated backend: blocks and tags over member archives with trust
 * weights (design.md, "Replication with trust weights").
 *
 *     backend-replicated CONFIG.sqlite
 *
 * CONFIG.sqlite (replica-db.ts) holds the members and the placement cache;
 * it is created empty on first use, and members are added through admin
 * (`archive-admin 'backend-replicated CONFIG.sqlite' add-member ...`).
 */
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage, LogLevel,
} from '../backends/backend.js';
import { runAdmin } from '../backends/admin-commands.js';
import { BackendError } from '../backends/errors.js';
import {
  checkBlockSize, checkCursor, checkKey, checkKeyList, checkListLimit, checkOwner, checkTagName, checkTtl, isValidKey,
} from '../backends/names.js';
import { BlockIO, sha256 } from './block-io.js';
import { replicaAdminTable } from './replica-admin.js';
import { ReplicaDb, UNKNOWN } from './replica-db.js';
import { ReplicaLocks } from './replica-locks.js';
import { ReplicaScans } from './replica-scans.js';
import { ReplicaSet } from './replica-set.js';
import { ReplicaTags } from './replica-tags.js';

export interface ReplicatedOptions {
  /** Opens a member's identifier (the context's `openArchive`). */
  openArchive(identifier: string): Promise<Backend>;
  log(level: LogLevel, text: string): void;
}

export class ReplicatedBackend implements Backend {
  readonly set: ReplicaSet;
  readonly blocks: BlockIO;
  readonly scans: ReplicaScans;
  private readonly tags: ReplicaTags;
  private readonly locks: ReplicaLocks;
  private closed = false;

  constructor(readonly db: ReplicaDb, options: ReplicatedOptions) {
    this.set = new ReplicaSet(db, options.openArchive, options.log);
    this.blocks = new BlockIO(this.set);
    this.scans = new ReplicaScans(this.set);
    this.tags = new ReplicaTags(this.set);
    this.locks = new ReplicaLocks(this.set);
  }

  /** Opens (creating on first use) the set described by CONFIG.sqlite. */
  static open(file: string, options: ReplicatedOptions): ReplicatedBackend {
    return new ReplicatedBackend(new ReplicaDb(file), options);
  }

  info(): BackendInfo {
    const members = this.set.members();
    return {
      backend: 'replicated',
      blockSize: this.db.blockSize(),
      writable: members.length === 0 || members.some((m) => m.state === 'active'),
      features: ['remove', 'listBlocks', 'admin'],
    };
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.checkOpen();
    checkKey(key);
    checkBlockSize(data, this.db.blockSize());
    await this.blocks.put(key, data);
  }

  async exists(key: string): Promise<boolean> {
    this.checkOpen();
    return this.blocks.exists(checkKey(key));
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    this.checkOpen();
    return this.blocks.existsMany(checkKeyList(keys));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.checkOpen();
    return this.blocks.get(checkKey(key));
  }

  async remove(key: string): Promise<boolean> {
    this.checkOpen();
    return this.blocks.remove(checkKey(key));
  }

  /** The union of the placement cache: keys with a present copy on a member that is not lost, in key order. */
  async listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    this.checkOpen();
    const after = checkCursor(cursor);
    checkListLimit(limit);
    if (after !== null && !isValidKey(after)) throw new BackendError('badRequest', 'listBlocks cursor was not made by this backend');
    const keys = this.db.listPresent(after ?? '', limit);
    return [keys, keys.length === limit ? (keys[keys.length - 1] as string) : null];
  }

  async setTag(name: string, value: Uint8Array): Promise<void> {
    this.checkOpen();
    await this.tags.put(checkTagName(name), value);
  }

  async getTag(name: string): Promise<Uint8Array | null> {
    this.checkOpen();
    return this.tags.get(checkTagName(name));
  }

  async removeTag(name: string): Promise<boolean> {
    this.checkOpen();
    return this.tags.remove(checkTagName(name));
  }

  async listTags(): Promise<string[]> {
    this.checkOpen();
    return this.tags.list();
  }

  async lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    checkTtl(ttlSeconds);
    return this.locks.lock(name, owner, ttlSeconds);
  }

  async unlockTag(name: string, owner: string): Promise<void> {
    this.checkOpen();
    checkTagName(name);
    checkOwner(owner);
    await this.locks.unlock(name, owner);
  }

  async tagLocked(name: string): Promise<string | null> {
    this.checkOpen();
    return this.locks.owner(checkTagName(name));
  }

  /**
   * Flushes every member written to since the last flush; only then are this
   * process's placements on it committed as durable in the cache. Copies on
   * a member that cannot flush (it died after taking them) may not be
   * durable: they become unknown and the blocks are placed on other members,
   * which are flushed in turn, so that a flush that returns means every
   * acknowledged block has 100% trust in durable copies.
   */
  async flush(): Promise<void> {
    this.checkOpen();
    let failures: string[] = [];
    for (let round = 0; round < 3; round += 1) {
      await this.set.writes.onIdle();
      const { failed, messages } = await this.flushDirty();
      failures = messages;
      if (failed.length === 0) break;
      for (const id of failed) await this.replacePending(id);
    }
    this.db.checkpoint();
    if (failures.length > 0 || this.set.dirty.size > 0) {
      throw new BackendError('unavailable', `flush failed on members: ${failures.join('; ') || this.set.names(this.set.dirty)}`);
    }
  }

  private async flushDirty(): Promise<{ failed: number[]; messages: string[] }> {
    const dirty = [...this.set.dirty];
    this.set.dirty.clear();
    const failed: number[] = [];
    const messages: string[] = [];
    await Promise.all(dirty.map(async (id) => {
      const member = this.set.memberById(id);
      if (member === undefined) return;
      try {
        await this.set.call(member, (b) => b.flush());
        this.db.commitPending(id);
      } catch (err) {
        failed.push(id);
        messages.push(`${member.name}: ${(err as Error).message}`);
      }
    }));
    return { failed, messages };
  }

  /** The member could not flush: its not-yet-durable copies become unknown, and the blocks go elsewhere. */
  private async replacePending(id: number): Promise<void> {
    for (;;) {
      const keys = this.db.pendingKeys(id, 256);
      if (keys.length === 0) return;
      for (const key of keys) {
        this.db.recordFindings(key, [[id, UNKNOWN]]);
        const data = await this.blocks.get(key).catch(() => null);
        if (data !== null) await this.blocks.place(key, data, sha256(data));
      }
    }
  }

  async stats(): Promise<BackendStats> {
    this.checkOpen();
    return this.scans.totals();
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.checkOpen();
    return runAdmin('replicated', replicaAdminTable(this), command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      await this.set.pool.closeAll();
      this.db.close();
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError('unavailable', `the replicated archive ${this.db.file} is closed`);
  }
}
