/**
 * The replicated backend's SQLite file (`backend-replicated CONFIG.sqlite`).
 *
 * NOT a rebuildable cache, as a whole:
 *  - `meta` (the set's name and block size) and `members` (names,
 *    identifiers, trust, weights, states) are configuration that exists
 *    nowhere else: lose them and the set is gone. Back this file up.
 *  - `blocks.sha256` is the checksum of each block's bytes taken at put
 *    time; it can only be re-learnt from the members' copies (rebuild-cache
 *    does so for keys it does not know, trusting the first copy it reads).
 * A rebuildable cache:
 *  - `placements` (which member holds which block) is rebuilt from the
 *    members by `verify` and `rebuild-cache`.
 *  - `jobs` only holds the progress of long admin commands, for resuming.
 *
 * WAL mode, `PRAGMA user_version` schema version, statements prepared once.
 * Several processes may share the file (WAL plus a busy timeout).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { BackendError } from '../backends/errors.js';

export const SCHEMA_VERSION = 1;

export type MemberState = 'active' | 'read-only' | 'draining' | 'lost';
export const MEMBER_STATES: readonly MemberState[] = ['active', 'read-only', 'draining', 'lost'];

/** Placement status of a block on a member; no row means absent. */
export const PRESENT = 1;
export const ABSENT = 0;
export const UNKNOWN = 2;
export type PlacementStatus = typeof PRESENT | typeof ABSENT | typeof UNKNOWN;

export interface MemberRow {
  id: number;
  name: string;
  identifier: string;
  trust: number;
  readWeight: number;
  writeWeight: number;
  state: MemberState;
  /** 1 once the member carries this set's membership tag. */
  joined: number;
}

export interface BlockRow {
  key: string;
  size: number | null;
  sha256: Buffer | null;
}

export interface PlacementRow {
  member: number;
  status: PlacementStatus;
}

export interface JobRow {
  name: string;
  cursor: string | null;
  startedAt: number;
  detail: string | null;
}

interface MemberRecord {
  id: number;
  name: string;
  identifier: string;
  trust: number;
  read_weight: number;
  write_weight: number;
  state: MemberState;
  joined: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  identifier TEXT NOT NULL,
  trust REAL NOT NULL,
  read_weight REAL NOT NULL,
  write_weight REAL NOT NULL,
  state TEXT NOT NULL,
  joined INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, size INTEGER, sha256 BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS placements (
  key TEXT NOT NULL,
  member INTEGER NOT NULL,
  status INTEGER NOT NULL,
  confirmed_at INTEGER NOT NULL,
  pending TEXT,
  PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS placements_by_member ON placements (member, key);
CREATE INDEX IF NOT EXISTS placements_pending ON placements (pending) WHERE pending IS NOT NULL;
CREATE TABLE IF NOT EXISTS jobs (name TEXT PRIMARY KEY, cursor TEXT, started_at INTEGER NOT NULL, detail TEXT);
`;

function toMember(r: MemberRecord): MemberRow {
  return {
    id: r.id, name: r.name, identifier: r.identifier, trust: r.trust,
    readWeight: r.read_weight, writeWeight: r.write_weight, state: r.state, joined: r.joined,
  };
}

export class ReplicaDb {
  readonly db: Database.Database;
  /** Identifies this process's not-yet-flushed placements (`placements.pending`). */
  readonly session = randomBytes(8).toString('hex');
  private readonly s;
  private lastDataVersion = -1;
  private commitError: Error | null = null;

  constructor(readonly file: string) {
    const created = !existsSync(file);
    if (created) {
      try {
        closeSync(openSync(file, 'wx', 0o600));
      } catch (err) {
        throw new BackendError('badRequest', `cannot create ${file}: ${(err as Error).message}`);
      }
    }
    try {
      this.db = new Database(file, { timeout: 10_000 });
    } catch (err) {
      throw new BackendError('badRequest', `cannot open ${file}: ${(err as Error).message}`);
    }
    if (created) chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      this.db.close();
      throw new BackendError('corrupt', `${file} has schema version ${version}; this cairn knows ${SCHEMA_VERSION}`);
    }
    if (version === 0) {
      const tables = this.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number };
      if (tables.n > 0) {
        this.db.close();
        throw new BackendError('badRequest', `${file} is an SQLite file of something else, not a replicated set; refusing to use it`);
      }
      this.db.transaction(() => {
        this.db.exec(SCHEMA);
        this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('set_name', `replica-${randomBytes(6).toString('hex')}`);
        this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('block_size', String(16 * 1024 * 1024));
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    }
    const db = this.db;
    this.s = {
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      meta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      members: db.prepare<[], MemberRecord>('SELECT * FROM members ORDER BY name'),
      addMember: db.prepare('INSERT INTO members (name, identifier, trust, read_weight, write_weight, state, joined) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      setTrust: db.prepare('UPDATE members SET trust = ? WHERE id = ?'),
      setWeights: db.prepare('UPDATE members SET read_weight = ?, write_weight = ? WHERE id = ?'),
      setState: db.prepare('UPDATE members SET state = ? WHERE id = ?'),
      setJoined: db.prepare('UPDATE members SET joined = 1 WHERE id = ?'),
      deleteMember: db.prepare('DELETE FROM members WHERE id = ?'),
      block: db.prepare<[string], { key: string; size: number | null; sha256: Buffer | null }>('SELECT key, size, sha256 FROM blocks WHERE key = ?'),
      insertBlock: db.prepare('INSERT INTO blocks (key, size, sha256) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING'),
      fillChecksum: db.prepare('UPDATE blocks SET size = ?, sha256 = ? WHERE key = ? AND sha256 IS NULL'),
      deleteBlock: db.prepare('DELETE FROM blocks WHERE key = ?'),
      placements: db.prepare<[string], PlacementRow>('SELECT member, status FROM placements WHERE key = ?'),
      setPlacement: db.prepare(`INSERT INTO placements (key, member, status, confirmed_at, pending) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (key, member) DO UPDATE SET status = excluded.status, confirmed_at = excluded.confirmed_at,
        pending = CASE WHEN excluded.status = ${PRESENT} THEN COALESCE(excluded.pending, placements.pending) ELSE NULL END`),
      forgetBatch: db.prepare('DELETE FROM placements WHERE member = ? AND key IN (SELECT key FROM placements WHERE member = ? LIMIT 10000)'),
      deletePlacement: db.prepare('DELETE FROM placements WHERE key = ? AND member = ?'),
      deletePlacements: db.prepare('DELETE FROM placements WHERE key = ?'),
      pendingKeys: db.prepare<[string, number, number], { key: string }>('SELECT key FROM placements WHERE pending = ? AND member = ? LIMIT ?'),
      orphanPending: db.prepare<[string, number, number], { key: string }>('SELECT key FROM placements WHERE pending IS NOT NULL AND pending != ? AND member = ? LIMIT ?'),
      settle: db.prepare('UPDATE placements SET pending = NULL WHERE key = ? AND member = ?'),
      commitPending: db.prepare('UPDATE placements SET pending = NULL WHERE pending = ? AND member = ?'),
      listPresent: db.prepare<[string, number], { key: string }>(`SELECT key FROM blocks b WHERE key > ? AND EXISTS (
        SELECT 1 FROM placements p JOIN members m ON m.id = p.member
        WHERE p.key = b.key AND p.status = ${PRESENT} AND m.state != 'lost') ORDER BY key LIMIT ?`),
      adopt: db.prepare('INSERT INTO blocks (key, size, sha256) VALUES (?, NULL, NULL) ON CONFLICT (key) DO NOTHING'),
      confirm: db.prepare(`INSERT INTO placements (key, member, status, confirmed_at, pending) VALUES (?, ?, ${PRESENT}, ?, NULL)
        ON CONFLICT (key, member) DO UPDATE SET status = ${PRESENT}, confirmed_at = excluded.confirmed_at`),
      sweepBatch: db.prepare(`DELETE FROM placements WHERE member = ? AND key IN (
        SELECT key FROM placements WHERE member = ? AND confirmed_at < ? LIMIT 10000)`),
      clearBatch: db.prepare('DELETE FROM placements WHERE key IN (SELECT key FROM placements LIMIT 10000)'),
      job: db.prepare<[string], { name: string; cursor: string | null; started_at: number; detail: string | null }>('SELECT * FROM jobs WHERE name = ?'),
      jobs: db.prepare<[], { name: string; cursor: string | null; started_at: number; detail: string | null }>('SELECT * FROM jobs ORDER BY name'),
      startJob: db.prepare('INSERT INTO jobs (name, cursor, started_at, detail) VALUES (?, NULL, ?, ?) ON CONFLICT (name) DO NOTHING'),
      moveJob: db.prepare('UPDATE jobs SET cursor = ? WHERE name = ?'),
      endJob: db.prepare('DELETE FROM jobs WHERE name = ?'),
    };
  }

  /** True when another connection changed the file since the last call (PRAGMA data_version). */
  changedElsewhere(): boolean {
    const version = this.s.dataVersion.get() as number;
    const changed = version !== this.lastDataVersion;
    this.lastDataVersion = version;
    return changed;
  }

  setName(): string {
    return (this.s.meta.get('set_name') as { value: string }).value;
  }

  blockSize(): number {
    return Number((this.s.meta.get('block_size') as { value: string }).value);
  }

  setBlockSize(size: number): void {
    this.s.setMeta.run('block_size', String(size));
  }

  members(): MemberRow[] {
    return this.s.members.all().map(toMember);
  }

  addMember(m: Omit<MemberRow, 'id'>): void {
    this.s.addMember.run(m.name, m.identifier, m.trust, m.readWeight, m.writeWeight, m.state, m.joined);
  }

  setTrust(id: number, trust: number): void {
    this.s.setTrust.run(trust, id);
  }

  setWeights(id: number, read: number, write: number): void {
    this.s.setWeights.run(read, write, id);
  }

  setState(id: number, state: MemberState): void {
    this.s.setState.run(state, id);
  }

  setJoined(id: number): void {
    this.s.setJoined.run(id);
  }

  /** Forgets a member and every placement on it. */
  deleteMember(id: number): void {
    this.db.transaction(() => {
      this.forgetMember(id);
      this.s.deleteMember.run(id);
    })();
  }

  /** Deletes every placement of a member, in batches so no transaction grows without bound. */
  forgetMember(id: number): void {
    while (this.s.forgetBatch.run(id, id).changes > 0) { /* next batch */ }
  }

  block(key: string): BlockRow | undefined {
    return this.s.block.get(key);
  }

  placements(key: string): PlacementRow[] {
    return this.s.placements.all(key);
  }

  /** Records a block's checksum (first writer wins) and the given placements, in one transaction. */
  recordPut(key: string, size: number, sha256: Buffer, present: number[], pending: boolean): void {
    this.grouped(() => {
      this.s.insertBlock.run(key, size, sha256);
      const now = Date.now();
      for (const member of present) this.s.setPlacement.run(key, member, PRESENT, now, pending ? this.session : null);
    });
  }

  /** Records what members answered about a key (present, absent or unknown). */
  recordFindings(key: string, findings: ReadonlyArray<readonly [member: number, status: PlacementStatus]>, found?: { size: number; sha256: Buffer }): void {
    this.grouped(() => {
      if (found !== undefined) {
        this.s.insertBlock.run(key, found.size, found.sha256);
        this.s.fillChecksum.run(found.size, found.sha256, key);
      }
      const now = Date.now();
      for (const [member, status] of findings) {
        if (status === ABSENT) this.s.deletePlacement.run(key, member);
        else this.s.setPlacement.run(key, member, status, now, null);
      }
    });
  }

  /** After a member's flush: this process's placements on it are durable. */
  commitPending(member: number): void {
    this.s.commitPending.run(this.session, member);
  }

  /** Keys this process wrote to the member that are not yet durable there. */
  pendingKeys(member: number, limit: number): string[] {
    return this.s.pendingKeys.all(this.session, member, limit).map((r) => r.key);
  }

  /** Keys another process (one that died, or has not flushed yet) wrote to the member and did not see flushed. */
  orphanPending(member: number, limit: number): string[] {
    return this.s.orphanPending.all(this.session, member, limit).map((r) => r.key);
  }

  /** After checking and flushing the member: which of those keys it really holds (durable now) and which it lacks. */
  settleOrphans(member: number, keys: readonly string[], present: readonly boolean[]): void {
    this.db.transaction(() => {
      keys.forEach((key, i) => {
        if (present[i] === true) this.s.settle.run(key, member);
        else this.s.deletePlacement.run(key, member);
      });
    })();
  }

  /** Forgets a block entirely (after it was removed from every holder). */
  forgetBlock(key: string): void {
    this.grouped(() => {
      this.s.deletePlacements.run(key);
      this.s.deleteBlock.run(key);
    });
  }

  removePlacement(key: string, member: number): void {
    this.grouped(() => this.s.deletePlacement.run(key, member));
  }

  /** Keys after `after` with a present placement on a member that is not lost, in key order. */
  listPresent(after: string, limit: number): string[] {
    return this.s.listPresent.all(after, limit).map((r) => r.key);
  }

  /**
   * verify: a member listed these keys. Each becomes present on it (confirmed
   * now); keys the cache did not know are adopted with no checksum yet.
   * Returns how many were adopted.
   */
  confirmListed(keys: readonly string[], member: number, now: number): number {
    let adopted = 0;
    this.db.transaction(() => {
      for (const key of keys) {
        adopted += this.s.adopt.run(key).changes;
        this.s.confirm.run(key, member, now);
      }
    })();
    return adopted;
  }

  /** verify, after a complete listing: placements on the member not confirmed since `before` are absent. */
  sweepUnconfirmed(member: number, before: number): number {
    let removed = 0;
    for (;;) {
      const changes = this.s.sweepBatch.run(member, member, before).changes;
      if (changes === 0) return removed;
      removed += changes;
    }
  }

  /** rebuild-cache: forgets every placement (in batches). */
  clearPlacements(): void {
    while (this.s.clearBatch.run().changes > 0) { /* next batch */ }
  }

  job(name: string): JobRow | undefined {
    const r = this.s.job.get(name);
    return r === undefined ? undefined : { name: r.name, cursor: r.cursor, startedAt: r.started_at, detail: r.detail };
  }

  jobs(): JobRow[] {
    return this.s.jobs.all().map((r) => ({ name: r.name, cursor: r.cursor, startedAt: r.started_at, detail: r.detail }));
  }

  /** Starts a job unless it is already under way (then it resumes); returns it. */
  startJob(name: string, detail: string | null = null): JobRow {
    this.s.startJob.run(name, Date.now(), detail);
    return this.job(name) as JobRow;
  }

  moveJob(name: string, cursor: string | null): void {
    this.s.moveJob.run(cursor, name);
  }

  endJob(name: string): void {
    this.s.endJob.run(name);
  }

  /**
   * Cache writes of operations running at the same time share one
   * transaction, committed at the end of the current turn of the event loop
   * (and by flush and close): one WAL commit for many puts rather than one
   * each. A crash may lose the last turn's records, never a flushed one;
   * what is lost is only cache (the blocks are on the members, found again
   * by get or verify). Each call is a savepoint: all of it or nothing.
   */
  private grouped(fn: () => void): void {
    if (!this.db.inTransaction) {
      this.db.exec('BEGIN IMMEDIATE');
      setImmediate(() => this.commit());
    }
    this.db.transaction(fn)();
  }

  /** Commits the grouped transaction, if one is open. */
  commit(): void {
    if (!this.db.open || !this.db.inTransaction) return;
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      this.commitError = err as Error;
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
    }
  }

  /** Commits, then makes everything committed so far durable on disk (flush). */
  checkpoint(): void {
    this.commit();
    const error = this.commitError;
    this.commitError = null;
    if (error !== null) throw new BackendError('unavailable', `cannot write ${this.file}: ${error.message}`);
    this.db.pragma('wal_checkpoint(PASSIVE)');
  }

  close(): void {
    this.commit();
    if (this.db.open) this.db.close();
  }
}
