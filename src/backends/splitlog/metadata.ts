/**
 * The splitlog metadata: a SQLite file (better-sqlite3, WAL mode,
 * `PRAGMA user_version` = SCHEMA_VERSION) that is a REBUILDABLE CACHE of the
 * logs. Everything in it can be recomputed by `reindex` from the log records,
 * settings included (they are logged as config records), except two
 * transient things that are not worth keeping across a rebuild: tag locks
 * (they expire anyway) and the writer lock row.
 *
 * Only the process holding the writer lock applies records; tag locks and
 * the writer lock itself are changed by anyone, in short IMMEDIATE
 * transactions. No transaction is ever held open across an `await`.
 */
import { chmodSync, closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Kind } from './record.js';
import { HEADER_SIZE, isRemoval, kindOf, RecordType } from './record.js';

/**
 * 2: block keys that are lowercase hex are stored as their bytes, and the
 * `blocks_by_log` index is gone (a file of version 1 is migrated on open).
 */
export const SCHEMA_VERSION = 2;

/** Where a record lies: log number, byte offset, whole record length. */
export interface Location {
  log: number;
  offset: number;
  length: number;
}

/** A record as the index sees it. `value` only for config records. */
export interface IndexOp {
  type: RecordType;
  name: string;
  loc: Location;
  value?: string;
}

export interface Position {
  log: number;
  offset: number;
}

export interface LogUsage {
  log: number;
  /** Bytes of the log covered by the index. */
  size: number;
  /** Bytes of records that are the current state (values and needed removals). */
  live: number;
}

interface LocRow { log: number; offset: number; length: number }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (key BLOB PRIMARY KEY, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS config (name TEXT PRIMARY KEY, value TEXT NOT NULL, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (kind TEXT NOT NULL, name TEXT NOT NULL, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (kind, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead (kind TEXT NOT NULL, name TEXT NOT NULL, log INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS dead_by_name ON dead (kind, name);
CREATE INDEX IF NOT EXISTS dead_by_log ON dead (log);
CREATE TABLE IF NOT EXISTS logs (log INTEGER PRIMARY KEY, size INTEGER NOT NULL, live INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
`;

/**
 * How a block key is stored. A key that is lowercase hex of even length (the
 * snapshot client's keys are 64 such characters) is stored as the bytes it
 * spells: half the size in the table, which is most of the file (on the
 * 952 MB bench tree, 37,000 blocks: 6.7 MB of index with text keys and a
 * by-log index, 1.9 MB like this). Any other key is stored as text. The two
 * cannot collide: SQLite compares a BLOB only with BLOBs and a TEXT only with
 * TEXTs, and it sorts every TEXT before every BLOB. Within each, the order is
 * the keys' own byte order, so `listBlocks` pages through text keys, then hex
 * keys, with the last key as the cursor.
 */
const PACKED_KEY = /^(?:[0-9a-f]{2})+$/;

export function storedKey(key: string): string | Buffer {
  return PACKED_KEY.test(key) ? Buffer.from(key, 'hex') : key;
}

function keyOfStored(stored: string | Buffer): string {
  return typeof stored === 'string' ? stored : stored.toString('hex');
}

/** The length a stored key had as text, in SQL (for byte counts). */
const KEY_TEXT_LENGTH = "(CASE typeof(key) WHEN 'blob' THEN 2 * length(key) ELSE length(key) END)";

const VALUE_TABLE: Record<Kind, 'blocks' | 'tags' | 'config'> = { block: 'blocks', tag: 'tags', config: 'config' };
const KEY_COLUMN: Record<Kind, 'key' | 'name'> = { block: 'key', tag: 'name', config: 'name' };

/** Thrown when the file is missing, unreadable, or marked as needing a reindex. */
export class MetadataUnusable extends Error {
  /** True when a newer cairn made the file: a reindex must not replace it. */
  readonly newer: boolean;

  constructor(message: string, newer = false) {
    super(message);
    this.newer = newer;
  }
}

type Name = string | Buffer;

function prepareAll(db: Database.Database) {
  const byKind = (kind: Kind) => {
    const table = VALUE_TABLE[kind];
    const col = KEY_COLUMN[kind];
    return {
      get: db.prepare<[Name], LocRow>(`SELECT log, offset, length FROM ${table} WHERE ${col} = ?`),
      del: db.prepare<[Name]>(`DELETE FROM ${table} WHERE ${col} = ?`),
    };
  };
  return {
    block: byKind('block'),
    tag: byKind('tag'),
    config: byKind('config'),
    allBlocks: db.prepare<[], LocRow & { key: Name }>('SELECT key, log, offset, length FROM blocks'),
    blocksPerLog: db.prepare<[], { log: number; n: number }>('SELECT log, count(*) AS n FROM blocks GROUP BY log'),
    tagsByLog: db.prepare<[number], LocRow & { name: string }>('SELECT name, log, offset, length FROM tags WHERE log = ? ORDER BY offset'),
    configByLog: db.prepare<[number], LocRow & { name: string }>('SELECT name, log, offset, length FROM config WHERE log = ? ORDER BY offset'),
    putBlock: db.prepare<[Name, number, number, number]>('INSERT OR REPLACE INTO blocks (key, log, offset, length) VALUES (?, ?, ?, ?)'),
    newBlock: db.prepare<[Name, number, number, number]>('INSERT INTO blocks (key, log, offset, length) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING'),
    putTag: db.prepare<[string, number, number, number]>('INSERT OR REPLACE INTO tags (name, log, offset, length) VALUES (?, ?, ?, ?)'),
    putConfig: db.prepare<[string, string, number, number, number]>('INSERT OR REPLACE INTO config (name, value, log, offset, length) VALUES (?, ?, ?, ?, ?)'),
    configAll: db.prepare<[], { name: string; value: string }>('SELECT name, value FROM config'),
    tombGet: db.prepare<[string, string], LocRow>('SELECT log, offset, length FROM tombstones WHERE kind = ? AND name = ?'),
    tombAny: db.prepare<[string], number>('SELECT 1 FROM tombstones WHERE kind = ? LIMIT 1').pluck(),
    tombDel: db.prepare<[string, string]>('DELETE FROM tombstones WHERE kind = ? AND name = ?'),
    tombPut: db.prepare<[string, string, number, number, number]>('INSERT OR REPLACE INTO tombstones (kind, name, log, offset, length) VALUES (?, ?, ?, ?, ?)'),
    tombByLog: db.prepare<[number], LocRow & { kind: Kind; name: string }>('SELECT kind, name, log, offset, length FROM tombstones WHERE log = ? ORDER BY offset'),
    tombAll: db.prepare<[], LocRow & { kind: Kind; name: string }>('SELECT kind, name, log, offset, length FROM tombstones'),
    deadAdd: db.prepare<[string, string, number]>('INSERT INTO dead (kind, name, log) VALUES (?, ?, ?)'),
    deadOutside: db.prepare<[string, string], { log: number }>('SELECT log FROM dead WHERE kind = ? AND name = ?'),
    deadDropLog: db.prepare<[number]>('DELETE FROM dead WHERE log = ?'),
    logGrow: db.prepare<[number, number]>('INSERT INTO logs (log, size, live) VALUES (?, ?, 0) ON CONFLICT (log) DO UPDATE SET size = max(size, excluded.size)'),
    logLive: db.prepare<[number, number]>('INSERT INTO logs (log, size, live) VALUES (?, 0, ?) ON CONFLICT (log) DO UPDATE SET live = live + excluded.live'),
    logDrop: db.prepare<[number]>('DELETE FROM logs WHERE log = ?'),
    logAll: db.prepare<[], LogUsage>('SELECT log, size, live FROM logs ORDER BY log'),
    metaGet: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE name = ?'),
    metaSet: db.prepare<[string, string]>('INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)'),
    metaDel: db.prepare<[string]>('DELETE FROM meta WHERE name = ?'),
    blockCount: db.prepare<[], { n: number; bytes: number | null }>(`SELECT count(*) AS n, sum(length - ${HEADER_SIZE} - ${KEY_TEXT_LENGTH}) AS bytes FROM blocks`),
    listBlocks: db.prepare<[Name, number], { key: Name }>('SELECT key FROM blocks WHERE key > ? ORDER BY key LIMIT ?'),
    // The hex key unpacked by SQLite and one column plucked: no Buffer and no row object per lookup.
    hasPackedBlock: db.prepare<[string], number>('SELECT 1 FROM blocks WHERE key = unhex(?)').pluck(),
    listTags: db.prepare<[], { name: string }>('SELECT name FROM tags ORDER BY name'),
    lockGet: db.prepare<[string], { owner: string; expires: number }>('SELECT owner, expires FROM locks WHERE name = ?'),
    lockSet: db.prepare<[string, string, number]>('INSERT OR REPLACE INTO locks (name, owner, expires) VALUES (?, ?, ?)'),
    lockDel: db.prepare<[string]>('DELETE FROM locks WHERE name = ?'),
  };
}

/**
 * Version 1 -> 2 in place: the block table is copied with packed keys, the
 * by-log index dropped, and the file vacuumed (the old pages would otherwise
 * stay in it as free pages). The table is a cache of the logs, so a failure
 * here leaves the file as it was, and `reindex` remains the way out.
 */
function migrateFrom1(db: Database.Database): void {
  db.function('cairn_stored_key', { deterministic: true }, (key: unknown) => (typeof key === 'string' ? storedKey(key) : key));
  db.transaction(() => {
    if (db.pragma('user_version', { simple: true }) !== 1) return;
    db.exec(`
      CREATE TABLE blocks_v2 (key BLOB PRIMARY KEY, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO blocks_v2 (key, log, offset, length) SELECT cairn_stored_key(key), log, offset, length FROM blocks;
      DROP INDEX IF EXISTS blocks_by_log;
      DROP TABLE blocks;
      ALTER TABLE blocks_v2 RENAME TO blocks;
      PRAGMA user_version = 2;
    `);
  }).immediate();
  try {
    db.exec('VACUUM');
  } catch {
    // Another connection is reading: the space comes back at a later VACUUM.
  }
}

type Statements = ReturnType<typeof prepareAll>;

/** A value or removal record the index holds, with where it lies. */
export interface IndexedRecord {
  kind: Kind;
  name: string;
  loc: Location;
}

export interface TagLock {
  owner: string;
  expires: number;
}

/**
 * The index. Its statements are private: every write goes through a method
 * that first ends the batched read transaction `lookup` may have opened
 * (a write inside it would only commit at the end of the turn).
 */
export class Metadata {
  private readonly s: Statements;
  /** A read transaction opened by `lookup` is open (until the end of this turn, or the next write). */
  private batchedRead = false;

  private constructor(readonly db: Database.Database, readonly file: string) {
    this.s = prepareAll(db);
  }

  /**
   * Opens an existing metadata file. Throws MetadataUnusable when it is
   * missing (and `create` is false), unreadable, or flagged for a reindex.
   */
  static open(file: string, options: { create: boolean; markForReindex?: boolean }): Metadata {
    if (options.create) {
      try {
        closeSync(openSync(file, 'wx', 0o600));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    let db: Database.Database;
    try {
      db = new Database(file, { fileMustExist: true, timeout: 10_000 });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CANTOPEN') throw new MetadataUnusable(`the metadata file ${file} does not exist`);
      throw new MetadataUnusable(`cannot open the metadata file ${file}: ${(err as Error).message}`);
    }
    try {
      db.pragma('journal_mode = WAL');
      // The logs are fsynced before every commit and the file is a cache of them:
      // a commit lost by a power failure is redone from the logs at start-up.
      db.pragma('synchronous = NORMAL');
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version === 0) {
        if (!options.create) throw new MetadataUnusable(`the metadata file ${file} is empty (no splitlog schema)`);
        db.transaction(() => {
          db.exec(SCHEMA);
          // A file created to be rebuilt stays unusable until the rebuild commits.
          if (options.markForReindex === true) db.prepare("INSERT OR REPLACE INTO meta (name, value) VALUES ('needsReindex', '1')").run();
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
      } else if (version === 1) {
        migrateFrom1(db);
      } else if (version !== SCHEMA_VERSION) {
        throw new MetadataUnusable(`the metadata file ${file} has schema version ${version}; this cairn knows version ${SCHEMA_VERSION}: use a newer cairn`, version > SCHEMA_VERSION);
      }
      const metadata = new Metadata(db, file);
      if (options.markForReindex !== true && metadata.getMeta('needsReindex') === '1') {
        throw new MetadataUnusable(`the metadata file ${file} was being rebuilt when a reindex stopped`);
      }
      try {
        chmodSync(file, 0o600);
      } catch {
        // not ours to change: leave it
      }
      return metadata;
    } catch (err) {
      db.close();
      if (err instanceof MetadataUnusable) throw err;
      throw new MetadataUnusable(`cannot read the metadata file ${file}: ${(err as Error).message}`);
    }
  }

  close(): void {
    this.endRead();
    if (this.db.open) this.db.close();
  }

  getMeta(name: string): string | undefined {
    return this.s.metaGet.get(name)?.value;
  }

  setMeta(name: string, value: string): void {
    this.endRead();
    this.s.metaSet.run(name, value);
  }

  deleteMeta(name: string): void {
    this.endRead();
    this.s.metaDel.run(name);
  }

  position(): Position {
    return { log: Number(this.getMeta('posLog') ?? 1), offset: Number(this.getMeta('posOffset') ?? 0) };
  }

  setPosition(pos: Position): void {
    this.setMeta('posLog', String(pos.log));
    this.setMeta('posOffset', String(pos.offset));
  }

  /**
   * Where a name's record is. Lookups made outside a transaction share one
   * read transaction until the end of this turn of the event loop: a lookup
   * on its own is a transaction of its own, five times the cost (13 vs 2.6 us
   * on the bench archive; a restore and a snapshot make one or more per
   * block). Writes end it first.
   */
  lookup(kind: Kind, name: string): Location | null {
    this.batchRead();
    return this.s[kind].get.get(kind === 'block' ? storedKey(name) : name) ?? null;
  }

  /** Whether a name is indexed: `lookup` without its location, for existence checks by the thousand (a third of the cost). */
  has(kind: Kind, name: string): boolean {
    if (kind !== 'block' || !PACKED_KEY.test(name)) return this.lookup(kind, name) !== null;
    this.batchRead();
    return this.s.hasPackedBlock.get(name) !== undefined;
  }

  /** Outside a transaction, opens the read transaction that lookups share until the end of this turn. */
  private batchRead(): void {
    if (this.db.inTransaction) return;
    this.db.exec('BEGIN');
    this.batchedRead = true;
    setImmediate(() => this.endRead());
  }

  /** Ends the read transaction opened by `lookup`, if it is still open. */
  private endRead(): void {
    if (!this.batchedRead) return;
    this.batchedRead = false;
    if (this.db.open && this.db.inTransaction) this.db.exec('COMMIT');
  }

  configValues(): Map<string, string> {
    return new Map(this.s.configAll.all().map((r) => [r.name, r.value]));
  }

  /** Runs `fn` in an IMMEDIATE transaction (the caller is synchronous throughout). */
  immediate<T>(fn: () => T): T {
    this.endRead();
    return this.db.transaction(fn).immediate();
  }

  /** Applies one record: `applyAll` of one. */
  apply(op: IndexOp): void {
    this.applyAll([op]);
  }

  /**
   * Applies records in order, last record wins. Idempotent: applying a
   * record already indexed at the same place changes nothing. Keeps the
   * per-log sizes and live byte counts (summed here and written once per
   * log), the removals still needed, and where superseded values lie (so
   * compaction knows which removals must be kept). A block new to the index,
   * with no removal of its kind pending, costs one statement: a snapshot
   * puts tens of thousands of them in a commit.
   */
  applyAll(ops: readonly IndexOp[]): void {
    const grown = new Map<number, number>();
    const live = new Map<number, number>();
    const addLive = (log: number, bytes: number): void => {
      live.set(log, (live.get(log) ?? 0) + bytes);
    };
    /** Kinds with removals in the index (looked up once per kind, then kept up to date here). */
    const tombs = new Map<Kind, boolean>();
    const hasTombs = (kind: Kind): boolean => {
      let any = tombs.get(kind);
      if (any === undefined) {
        any = this.s.tombAny.get(kind) !== undefined;
        tombs.set(kind, any);
      }
      return any;
    };
    for (const op of ops) {
      const { loc, name } = op;
      const kind = kindOf(op.type);
      grown.set(loc.log, Math.max(grown.get(loc.log) ?? 0, loc.offset + loc.length));
      const stored = kind === 'block' ? storedKey(name) : name;
      const removal = isRemoval(op.type);
      if (kind === 'block' && !removal && !hasTombs(kind) && this.s.newBlock.run(stored, loc.log, loc.offset, loc.length).changes === 1) {
        addLive(loc.log, loc.length);
        continue;
      }
      const current = this.s[kind].get.get(stored);
      const tomb = kind === 'config' || !hasTombs(kind) ? undefined : this.s.tombGet.get(kind, name);
      if (removal) {
        if (tomb !== undefined && tomb.log === loc.log && tomb.offset === loc.offset) continue;
        if (tomb !== undefined) addLive(tomb.log, -tomb.length);
        if (current !== undefined) {
          this.s[kind].del.run(stored);
          this.s.deadAdd.run(kind, name, current.log);
          addLive(current.log, -current.length);
        }
        this.s.tombPut.run(kind, name, loc.log, loc.offset, loc.length);
        tombs.set(kind, true);
        addLive(loc.log, loc.length);
        continue;
      }
      if (current !== undefined && current.log === loc.log && current.offset === loc.offset) continue;
      if (current !== undefined) {
        if (kind !== 'config') this.s.deadAdd.run(kind, name, current.log);
        addLive(current.log, -current.length);
      }
      if (tomb !== undefined) {
        this.s.tombDel.run(kind, name);
        addLive(tomb.log, -tomb.length);
      }
      if (kind === 'block') this.s.putBlock.run(stored, loc.log, loc.offset, loc.length);
      else if (kind === 'tag') this.s.putTag.run(name, loc.log, loc.offset, loc.length);
      else this.s.putConfig.run(name, op.value ?? '', loc.log, loc.offset, loc.length);
      addLive(loc.log, loc.length);
    }
    for (const [log, end] of grown) this.s.logGrow.run(log, end);
    for (const [log, bytes] of live) this.s.logLive.run(log, bytes);
  }

  /** Forgets everything derived from the logs (reindex starts from here). Locks stay. */
  clearIndex(): void {
    this.endRead();
    this.db.exec('DELETE FROM blocks; DELETE FROM tags; DELETE FROM config; DELETE FROM tombstones; DELETE FROM dead; DELETE FROM logs;');
    this.deleteMeta('posLog');
    this.deleteMeta('posOffset');
  }

  logUsage(): LogUsage[] {
    return this.s.logAll.all();
  }

  blockStats(): { blocks: number; bytes: number } {
    const row = this.s.blockCount.get();
    return { blocks: row?.n ?? 0, bytes: row?.bytes ?? 0 };
  }

  /** Up to `limit` block keys after `after`, in the order described at `storedKey`. */
  listBlocks(after: string, limit: number): string[] {
    return this.s.listBlocks.all(storedKey(after), limit).map((r) => keyOfStored(r.key));
  }

  tagNames(): string[] {
    return this.s.listTags.all().map((r) => r.name);
  }

  /**
   * The blocks, tags and settings whose current value lies in one of `logs`,
   * by log, in offset order. Blocks have no index by log (it was as large as
   * the table): one pass over the table finds them for all the logs at once.
   */
  valuesIn(logs: ReadonlySet<number>): Map<number, IndexedRecord[]> {
    const found = new Map<number, IndexedRecord[]>([...logs].map((log) => [log, []]));
    for (const row of this.s.allBlocks.iterate()) {
      const list = found.get(row.log);
      if (list !== undefined) list.push({ kind: 'block', name: keyOfStored(row.key), loc: { log: row.log, offset: row.offset, length: row.length } });
    }
    for (const [log, list] of found) {
      list.push(...this.tagsIn(log));
      for (const row of this.s.configByLog.all(log)) list.push({ kind: 'config', name: row.name, loc: { log, offset: row.offset, length: row.length } });
      list.sort((a, b) => a.loc.offset - b.loc.offset);
    }
    return found;
  }

  /** The tags whose current value lies in `log`, in offset order. */
  tagsIn(log: number): IndexedRecord[] {
    return this.s.tagsByLog.all(log).map((r) => ({ kind: 'tag', name: r.name, loc: { log, offset: r.offset, length: r.length } }));
  }

  /** How many blocks each log holds the current value of. */
  blocksPerLog(): Map<number, number> {
    return new Map(this.s.blocksPerLog.all().map((r) => [r.log, r.n]));
  }

  /** The removal records that lie in `log`, in offset order. */
  removalsIn(log: number): IndexedRecord[] {
    return this.s.tombByLog.all(log).map((r) => ({ kind: r.kind, name: r.name, loc: { log: r.log, offset: r.offset, length: r.length } }));
  }

  /** The logs that hold superseded values of a name (which its removal record must keep hidden). */
  supersededIn(kind: Kind, name: string): number[] {
    return this.s.deadOutside.all(kind, name).map((r) => r.log);
  }

  /** Compaction, inside `immediate`: a removal record that is no longer kept. */
  dropRemoval(kind: Kind, name: string): void {
    this.endRead();
    this.s.tombDel.run(kind, name);
  }

  /** Compaction, inside `immediate`: a log that is deleted. */
  forgetLog(log: number): void {
    this.endRead();
    this.s.deadDropLog.run(log);
    this.s.logDrop.run(log);
  }

  /** Compaction, inside `immediate`: removals that no longer hide anything become dead space. */
  settleRemovals(): void {
    this.endRead();
    for (const tomb of this.s.tombAll.all()) {
      if (this.s.deadOutside.all(tomb.kind, tomb.name).length === 0) {
        this.s.tombDel.run(tomb.kind, tomb.name);
        this.s.logLive.run(tomb.log, -tomb.length);
      }
    }
  }

  tagLock(name: string): TagLock | undefined {
    return this.s.lockGet.get(name);
  }

  /** Inside `immediate`. */
  setTagLock(name: string, lock: TagLock): void {
    this.endRead();
    this.s.lockSet.run(name, lock.owner, lock.expires);
  }

  /** Inside `immediate`. */
  dropTagLock(name: string): void {
    this.endRead();
    this.s.lockDel.run(name);
  }
}
