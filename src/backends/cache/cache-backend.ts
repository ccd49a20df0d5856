/**
 * The existence cache (design.md, "Proxy backends"):
 *
 *     backend-cache CACHEFILE 'INNER IDENTIFIER'
 *
 * A SQLite file of keys known to exist in the inner archive, so that
 * `exists`, `existsMany` and the `put` of a block already stored are answered
 * locally on a slow link. Only positive answers are cached: a miss is asked of
 * the inner archive and remembered when present.
 *
 * Durability: a key learnt in this session (a put the inner archive
 * acknowledged, or an existence the inner archive reported) is held in memory
 * and answered from there, and enters the file only after the inner `flush`
 * (or `close`) has returned, in one transaction; so a crash never leaves the
 * cache claiming a block the inner archive lost.
 *
 * Safety: a cache is only right while every removal from the inner archive
 * goes through it (or through another client of the same cache file). See
 * README, "backend-cache".
 */
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage, LogLevel, ProxyBackend,
} from '../backend.js';
import { formatFields, type AdminTable } from '../admin-commands.js';
import { BackendError } from '../errors.js';
import { checkBlockSize, checkKey, checkKeyList, MAX_LIST_LIMIT } from '../names.js';
import { proxyInfo, runProxyAdmin } from '../proxy-admin.js';
import { CacheDb, type PendingEntry } from './cache-db.js';

export interface CacheOptions {
  /** The inner identifier (redacted), recorded in the file to warn when a cache meets another archive. */
  innerLabel?: string;
  log?: (level: LogLevel, text: string) => void;
}

export class CacheBackend implements ProxyBackend {
  private readonly db: CacheDb;
  /** Keys learnt this session, not yet committed to the file (see the module comment). */
  private readonly pending = new Map<string, PendingEntry>();
  private hits = 0;
  private misses = 0;
  private closed = false;
  private readonly adminTable: AdminTable = {
    info: { usage: 'info', summary: 'the cache file, its entries, and the inner archive', run: () => this.describe() },
    stats: { usage: 'stats', summary: 'cache hits and misses since opened, and entries', run: () => this.cacheStats() },
    clear: { usage: 'clear', summary: 'forget every cached key (the next questions go to the inner archive)', run: (args) => this.clear(args) },
    rebuild: { usage: 'rebuild', summary: 'refill the cache by listing the inner archive (listBlocks)', run: (args) => this.rebuild(args) },
  };

  constructor(readonly inner: Backend, cacheFile: string, private readonly options: CacheOptions = {}) {
    this.db = new CacheDb(cacheFile);
    const label = options.innerLabel;
    if (label !== undefined) {
      const recorded = this.db.meta('inner');
      if (recorded === null) this.db.setMetaValue('inner', label);
      else if (recorded !== label) {
        options.log?.('warning', `cache file ${cacheFile} was filled for ${recorded}, now used for ${label}: if that is another archive, run "rebuild"`);
      }
    }
  }

  info(): BackendInfo {
    const inner = this.inner.info();
    const features = inner.features.includes('admin') ? inner.features : [...inner.features, 'admin' as const];
    return { ...inner, backend: 'cache', features };
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.open();
    checkKey(key);
    const info = this.inner.info();
    checkBlockSize(data, info.blockSize);
    if (!info.writable) throw new BackendError('readOnly', `the inner archive (${info.backend}) is read-only`);
    // protocol.md, put: idempotent, so a block known to be stored need not travel.
    if (this.known(key)) {
      this.hits += 1;
      return;
    }
    this.misses += 1;
    const watermark = this.db.watermark();
    await this.inner.put(key, data);
    this.learn(key, watermark);
  }

  async exists(key: string): Promise<boolean> {
    this.open();
    checkKey(key);
    if (this.known(key)) {
      this.hits += 1;
      return true;
    }
    this.misses += 1;
    const watermark = this.db.watermark();
    const present = await this.inner.exists(key);
    if (present) this.learn(key, watermark);
    return present;
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    this.open();
    checkKeyList(keys);
    const answers = keys.map((key) => this.known(key));
    const missing = [...new Set(keys.filter((_, i) => !answers[i]))];
    this.hits += keys.length - missing.length;
    this.misses += missing.length;
    if (missing.length === 0) return answers;
    const watermark = this.db.watermark();
    const present = await this.inner.existsMany(missing);
    const found = new Set(missing.filter((_, i) => present[i] === true));
    for (const key of found) this.learn(key, watermark);
    return keys.map((key, i) => answers[i] === true || found.has(key));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.open();
    checkKey(key);
    const watermark = this.db.watermark();
    const data = await this.inner.get(key);
    if (data !== null) this.learn(key, watermark);
    else if (this.known(key)) {
      // The inner archive lost a block the cache vouched for: something removed it behind the cache's back.
      this.pending.delete(key);
      this.db.forget(key);
      this.options.log?.('warning', `the cache listed a block the inner archive does not have; forgot it (was something removed without the cache?)`);
    }
    return data;
  }

  async remove(key: string): Promise<boolean> {
    this.open();
    checkKey(key);
    // Forget first, so that no one is told the block exists while it goes;
    // log the removal after, so that another client's earlier sighting is not committed.
    this.pending.delete(key);
    this.db.forget(key);
    try {
      return await this.inner.remove(key);
    } finally {
      this.db.logRemoved(key);
    }
  }

  listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    this.open();
    return this.inner.listBlocks(cursor, limit);
  }

  setTag(name: string, value: Uint8Array): Promise<void> {
    this.open();
    return this.inner.setTag(name, value);
  }

  getTag(name: string): Promise<Uint8Array | null> {
    this.open();
    return this.inner.getTag(name);
  }

  removeTag(name: string): Promise<boolean> {
    this.open();
    return this.inner.removeTag(name);
  }

  listTags(): Promise<string[]> {
    this.open();
    return this.inner.listTags();
  }

  lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.open();
    return this.inner.lockTag(name, owner, ttlSeconds);
  }

  unlockTag(name: string, owner: string): Promise<void> {
    this.open();
    return this.inner.unlockTag(name, owner);
  }

  tagLocked(name: string): Promise<string | null> {
    this.open();
    return this.inner.tagLocked(name);
  }

  async flush(): Promise<void> {
    this.open();
    const learnt = [...this.pending.values()];
    await this.inner.flush();
    this.commit(learnt);
  }

  async stats(): Promise<BackendStats> {
    this.open();
    const inner = await this.inner.stats();
    return { ...inner, cacheEntries: this.entries(), cacheHits: this.hits, cacheMisses: this.misses };
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.open();
    return runProxyAdmin('cache', this.adminTable, this.inner, command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const learnt = [...this.pending.values()];
    try {
      await this.inner.close();
      this.commit(learnt);
    } finally {
      this.pending.clear();
      this.db.close();
    }
  }

  /** Whether the cache vouches for `key`: committed in the file, or learnt this session and not removed since by another client. */
  private known(key: string): boolean {
    const entry = this.pending.get(key);
    if (entry !== undefined) {
      if (!this.db.removedSince(key, entry.watermark)) return true;
      this.pending.delete(key);
    }
    return this.db.has(key);
  }

  private learn(key: string, watermark: number): void {
    if (!this.pending.has(key) && !this.db.has(key)) this.pending.set(key, { key, watermark });
  }

  /** Commits the keys learnt before an inner flush that has returned. */
  private commit(learnt: readonly PendingEntry[]): void {
    const still = learnt.filter((entry) => this.pending.get(entry.key) === entry);
    try {
      this.db.commit(still);
    } catch (err) {
      // The inner flush succeeded; a cache that cannot write only loses speed.
      this.options.log?.('warning', `cannot record ${still.length} keys in the cache file: ${(err as Error).message}`);
      return;
    }
    for (const entry of still) this.pending.delete(entry.key);
  }

  private entries(): number {
    return this.db.count() + this.pending.size;
  }

  private describe(): Promise<AdminResult> {
    return proxyInfo({
      backend: 'cache',
      cacheFile: this.db.file,
      entries: this.db.count(),
      pending: this.pending.size,
      rebuildable: true,
    }, this.inner);
  }

  private cacheStats(): AdminResult {
    const data = { hits: this.hits, misses: this.misses, entries: this.entries(), pending: this.pending.size };
    return { text: formatFields(data), data };
  }

  private clear(args: string[]): AdminResult {
    if (args.length > 0) throw new BackendError('badRequest', 'usage: clear');
    const forgotten = this.entries();
    this.db.clear();
    this.pending.clear();
    return { text: `forgot ${forgotten} cached keys`, data: { forgotten } };
  }

  private async rebuild(args: string[]): Promise<AdminResult> {
    if (args.length > 0) throw new BackendError('badRequest', 'usage: rebuild');
    if (!this.inner.info().features.includes('listBlocks')) {
      throw new BackendError('unsupported', `the inner archive (${this.inner.info().backend}) cannot list its blocks`);
    }
    await this.flush();
    const watermark = this.db.watermark();
    this.db.clear();
    this.pending.clear();
    let cursor: string | null = null;
    let listed = 0;
    do {
      const [keys, next]: BlockPage = await this.inner.listBlocks(cursor, MAX_LIST_LIMIT);
      this.db.addListed(keys, watermark);
      listed += keys.length;
      cursor = next;
    } while (cursor !== null);
    const entries = this.db.count();
    return { text: `rebuilt from the inner archive: ${listed} blocks listed, ${entries} cached`, data: { listed, entries } };
  }

  private open(): void {
    if (this.closed) throw new BackendError('unavailable', 'the cache archive is closed');
  }
}
