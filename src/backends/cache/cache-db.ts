import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import * as path from 'node:path';
import { BackendError } from '../errors.js';

/**
 * The cache file of `backend-cache`: a REBUILDABLE CACHE (conventions.md, 9).
 * It holds only keys known to exist in the inner archive; deleting the file
 * loses nothing but speed, and `rebuild` refills it from the inner archive.
 *
 * Besides the keys, it keeps a short log of removals made through any cache
 * client sharing this file, so that a key one client learnt before another
 * client removed it is never committed as present (see CacheBackend).
 */
const SCHEMA_VERSION = 1;
/** Removal records older than this are pruned when the file is opened. */
const REMOVAL_LOG_MS = 7 * 24 * 3600 * 1000;

export interface PendingEntry {
  key: string;
  /** The removal-log position when this client learnt the key. */
  watermark: number;
}

export class CacheDb {
  private readonly db: Database.Database;
  private readonly hasKey: Database.Statement<[string], unknown>;
  private readonly removedAfter: Database.Statement<[string, number], unknown>;
  private readonly maxRemoval: Database.Statement<[], { id: number | null }>;
  private readonly insertKey: Database.Statement<[string, string, number], unknown>;
  private readonly deleteKey: Database.Statement<[string], unknown>;
  private readonly logRemoval: Database.Statement<[string, number], unknown>;
  private readonly countKeys: Database.Statement<[], { n: number }>;
  private readonly deleteAll: Database.Statement<[], unknown>;
  private readonly getMeta: Database.Statement<[string], { value: string }>;
  private readonly setMeta: Database.Statement<[string, string], unknown>;
  private readonly commitMany: (entries: readonly PendingEntry[]) => number;
  private readonly removeTx: (key: string) => void;
  private readonly insertPage: (keys: readonly string[], watermark: number) => void;

  constructor(readonly file: string) {
    this.db = openDatabase(file);
    try {
      this.db.pragma('busy_timeout = 10000');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      migrate(this.db, file);
    } catch (err) {
      this.db.close();
      throw err instanceof BackendError ? err : new BackendError('internal', `cache file ${file}: ${(err as Error).message}`);
    }
    this.hasKey = this.db.prepare('SELECT 1 FROM blocks WHERE key = ?');
    this.removedAfter = this.db.prepare('SELECT 1 FROM removed WHERE key = ? AND id > ? LIMIT 1');
    this.maxRemoval = this.db.prepare('SELECT max(id) AS id FROM removed');
    const notRemoved = 'WHERE NOT EXISTS (SELECT 1 FROM removed WHERE key = ? AND id > ?)';
    this.insertKey = this.db.prepare(`INSERT OR IGNORE INTO blocks (key) SELECT ? ${notRemoved}`);
    this.deleteKey = this.db.prepare('DELETE FROM blocks WHERE key = ?');
    this.logRemoval = this.db.prepare('INSERT INTO removed (key, at) VALUES (?, ?)');
    this.countKeys = this.db.prepare('SELECT count(*) AS n FROM blocks');
    this.deleteAll = this.db.prepare('DELETE FROM blocks');
    this.getMeta = this.db.prepare('SELECT value FROM meta WHERE name = ?');
    this.setMeta = this.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value');
    this.commitMany = this.db.transaction((entries: readonly PendingEntry[]) => {
      let added = 0;
      for (const { key, watermark } of entries) added += this.insertKey.run(key, key, watermark).changes;
      return added;
    });
    this.removeTx = this.db.transaction((key: string) => {
      this.deleteKey.run(key);
      this.logRemoval.run(key, Date.now());
    });
    this.insertPage = this.db.transaction((keys: readonly string[], watermark: number) => {
      for (const key of keys) this.insertKey.run(key, key, watermark);
    });
    this.db.prepare('DELETE FROM removed WHERE at < ?').run(Date.now() - REMOVAL_LOG_MS);
  }

  has(key: string): boolean {
    return this.hasKey.get(key) !== undefined;
  }

  /** The position of the removal log now: keys learnt after this are checked against later removals. */
  watermark(): number {
    return this.maxRemoval.get()?.id ?? 0;
  }

  /** Whether a removal of `key` was logged after `watermark`. */
  removedSince(key: string, watermark: number): boolean {
    return this.removedAfter.get(key, watermark) !== undefined;
  }

  /** Records keys as present, in one transaction, skipping any removed since it was learnt. Returns how many were new. */
  commit(entries: readonly PendingEntry[]): number {
    return entries.length === 0 ? 0 : this.commitMany(entries);
  }

  /** Forgets a key before it is removed from the inner archive. */
  forget(key: string): void {
    this.deleteKey.run(key);
  }

  /** After a removal from the inner archive: forget the key again and log the removal for other clients. */
  logRemoved(key: string): void {
    this.removeTx(key);
  }

  /** Records one page of a listing of the inner archive. */
  addListed(keys: readonly string[], watermark: number): void {
    this.insertPage(keys, watermark);
  }

  count(): number {
    return this.countKeys.get()?.n ?? 0;
  }

  clear(): void {
    this.deleteAll.run();
  }

  meta(name: string): string | null {
    return this.getMeta.get(name)?.value ?? null;
  }

  setMetaValue(name: string, value: string): void {
    this.setMeta.run(name, value);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function openDatabase(file: string): Database.Database {
  try {
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
    // Create the file 0600 before SQLite does (its journal files take the same mode).
    closeSync(openSync(file, 'a', 0o600));
    return new Database(file);
  } catch (err) {
    throw new BackendError('internal', `cannot open cache file ${file}: ${(err as Error).message}`);
  }
}

function migrate(db: Database.Database, file: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version > SCHEMA_VERSION) {
    throw new BackendError('internal', `cache file ${file} has schema version ${version}, newer than this cairn knows (${SCHEMA_VERSION}); it is only a cache: delete it or use a newer cairn`);
  }
  db.exec(`
    BEGIN IMMEDIATE;
    CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS removed (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS removed_key ON removed (key, id);
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    PRAGMA user_version = ${SCHEMA_VERSION};
    COMMIT;
  `);
}
