import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { Backend } from '../backends/backend.js';
import { MAX_EXISTS_MANY } from '../backends/names.js';
import type { ContentRef } from './content-ref.js';

/**
 * The file cache (design.md, "The snapshot layer"): path, size, mtime, ctime
 * and inode to the content reference of a file, so an unchanged file is not
 * read again. A rebuildable cache: deleting the file only costs re-reading.
 * Rows are staged during a snapshot and committed in one transaction only
 * after the blocks they name are flushed; a cached key is trusted only if the
 * archive still has it (checked in batches with existsMany when loading).
 */
const SCHEMA_VERSION = 1;

export interface FileIdentity {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

export interface Row {
  path: Buffer;
  size: string;
  mtime: string;
  ctime: string;
  inode: string;
  level: number;
  key: Buffer;
}

export class FileCache {
  private readonly valid = new Map<string, Row>();
  private staged: Row[] = [];
  private readonly insert: Database.Statement;

  private constructor(private readonly db: Database.Database, private readonly archive: string) {
    this.insert = db.prepare('INSERT OR REPLACE INTO files (archive, path, size, mtime, ctime, inode, level, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  }

  /** Opens (creating) the cache file, for the archive whose key has this fingerprint. */
  static open(file: string, archiveFingerprint: string): FileCache {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== SCHEMA_VERSION) {
      db.exec('DROP TABLE IF EXISTS files');
      db.exec(`CREATE TABLE files (archive TEXT NOT NULL, path BLOB NOT NULL, size TEXT NOT NULL, mtime TEXT NOT NULL,
        ctime TEXT NOT NULL, inode TEXT NOT NULL, level INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (archive, path)) WITHOUT ROWID`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
    return new FileCache(db, archiveFingerprint);
  }

  /**
   * Loads this archive's rows and keeps those whose key the archive still
   * has (existsMany, at most 4096 keys a call). Returns the keys confirmed.
   */
  async load(backend: Backend): Promise<Set<string>> {
    const rows = this.db.prepare('SELECT path, size, mtime, ctime, inode, level, key FROM files WHERE archive = ?').all(this.archive) as Row[];
    const keys = [...new Set(rows.map((r) => r.key.toString('hex')))];
    const present = new Set<string>();
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += MAX_EXISTS_MANY) batches.push(keys.slice(i, i + MAX_EXISTS_MANY));
    for (let i = 0; i < batches.length; i += 4) {
      const group = batches.slice(i, i + 4);
      const answers = await Promise.all(group.map((b) => backend.existsMany(b)));
      group.forEach((batch, j) => batch.forEach((key, k) => { if ((answers[j] as boolean[])[k] === true) present.add(key); }));
    }
    for (const row of rows) if (present.has(row.key.toString('hex'))) this.valid.set(row.path.toString('latin1'), row);
    return present;
  }

  lookup(file: Buffer, id: FileIdentity): ContentRef | null {
    const row = this.valid.get(file.toString('latin1'));
    if (row === undefined || row.size !== String(id.size) || row.mtime !== String(id.mtimeNs) || row.ctime !== String(id.ctimeNs) || row.inode !== String(id.ino)) {
      return null;
    }
    return { level: row.level, key: row.key.toString('hex') };
  }

  /** Remembers a file's content, to be committed after the next flush. */
  stage(file: Buffer, id: FileIdentity, ref: ContentRef): void {
    this.staged.push({ path: file, size: String(id.size), mtime: String(id.mtimeNs), ctime: String(id.ctimeNs), inode: String(id.ino), level: ref.level, key: Buffer.from(ref.key, 'hex') });
  }

  /** Takes the rows staged so far, to commit once what they name is flushed. */
  takeStaged(): Row[] {
    const rows = this.staged;
    this.staged = [];
    return rows;
  }

  /** Commits rows in one transaction. Call only after the backend's flush. */
  commit(rows: Row[] = this.takeStaged()): void {
    this.db.transaction(() => {
      for (const r of rows) this.insert.run(this.archive, r.path, r.size, r.mtime, r.ctime, r.inode, r.level, r.key);
    })();
  }

  close(): void {
    this.db.close();
  }
}
