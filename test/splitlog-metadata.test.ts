/**
 * The splitlog index (Metadata):
 * - batched reads: lookups outside a transaction share one read transaction
 *   until the end of the event-loop turn, and any write made in that turn is
 *   committed when it returns, not when the turn ends (another connection,
 *   like another process, sees it);
 * - hex block keys stored as bytes, other keys as text, and a file of schema
 *   version 1 (text keys, a by-log index) migrated on open;
 * - `check` finds an index row that points at the wrong place, now that it
 *   confirms rows by count rather than reading them log by log;
 * - records applied in one batch index as they do one at a time.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { openArchive } from '../src/backends/open.js';
import { Metadata, SCHEMA_VERSION } from '../src/backends/splitlog/metadata.js';
import { HEADER_SIZE, RecordType } from '../src/backends/splitlog/record.js';
import { patternBytes, scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-meta-');
after(() => scratch.remove());

test('a write after a lookup in the same turn is committed at once, and lookups see the index', async () => {
  const file = path.join(scratch.dir, 'meta.sqlite');
  const meta = Metadata.open(file, { create: true });
  const other = new Database(file, { readonly: true });
  try {
    meta.immediate(() => meta.apply({ type: RecordType.BlockPut, name: 'k1', loc: { log: 1, offset: 0, length: 10 } }));
    assert.deepEqual(meta.lookup('block', 'k1'), { log: 1, offset: 0, length: 10 });
    assert.equal(meta.db.inTransaction, true, 'the lookup opened the shared read transaction');
    meta.setMeta('probe', 'written');
    assert.equal(meta.db.inTransaction, false, 'the write ended it');
    const seen = other.prepare('SELECT value FROM meta WHERE name = ?').get('probe') as { value: string } | undefined;
    assert.equal(seen?.value, 'written');
    // An index write after lookups in the same turn commits at once too.
    assert.equal(meta.lookup('block', 'k2'), null);
    meta.immediate(() => meta.apply({ type: RecordType.BlockPut, name: 'k2', loc: { log: 1, offset: 10, length: 10 } }));
    assert.equal((other.prepare('SELECT count(*) AS n FROM blocks').get() as { n: number }).n, 2);
    assert.deepEqual(meta.lookup('block', 'k2'), { log: 1, offset: 10, length: 10 });
    // The read transaction ends by itself at the end of the turn.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(meta.db.inTransaction, false);
  } finally {
    other.close();
    meta.close();
  }
});

const HEX = 'c0ffee'.repeat(10) + '0a1b';

test('hex block keys are stored as bytes and other keys as text; lookups, listings and byte counts see the keys as given', () => {
  const file = path.join(scratch.dir, 'packed.sqlite');
  const meta = Metadata.open(file, { create: true });
  const other = new Database(file, { readonly: true });
  try {
    const names = [HEX, 'ab', 'AB', 'abc', 'k1', '00'];
    meta.immediate(() => names.forEach((name, i) => meta.apply({ type: RecordType.BlockPut, name, loc: { log: 1, offset: i * 100, length: HEADER_SIZE + name.length + 10 } })));
    const stored = other.prepare('SELECT typeof(key) AS type, length(key) AS bytes FROM blocks ORDER BY key').all() as { type: string; bytes: number }[];
    assert.deepEqual(stored, [
      { type: 'text', bytes: 2 }, { type: 'text', bytes: 3 }, { type: 'text', bytes: 2 },
      { type: 'blob', bytes: 1 }, { type: 'blob', bytes: 1 }, { type: 'blob', bytes: 32 },
    ]);
    for (const [i, name] of names.entries()) assert.equal(meta.lookup('block', name)?.offset, i * 100, name);
    assert.equal(meta.lookup('block', 'Ab'), null);
    assert.deepEqual(meta.listBlocks('', 100), ['AB', 'abc', 'k1', '00', 'ab', HEX]);
    assert.deepEqual(meta.listBlocks('k1', 100), ['00', 'ab', HEX]);
    assert.deepEqual(meta.listBlocks('00', 100), ['ab', HEX]);
    assert.deepEqual(meta.blockStats(), { blocks: 6, bytes: 60 });
    meta.immediate(() => meta.apply({ type: RecordType.BlockRemoved, name: HEX, loc: { log: 1, offset: 900, length: HEADER_SIZE + HEX.length } }));
    assert.equal(meta.lookup('block', HEX), null);
    assert.deepEqual(meta.blockStats(), { blocks: 5, bytes: 50 });
  } finally {
    other.close();
    meta.close();
  }
});

test('a metadata file of schema version 1 is migrated on open: packed keys, no by-log index, nothing lost', () => {
  const file = path.join(scratch.dir, 'v1.sqlite');
  const v1 = new Database(file);
  v1.exec(`
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE blocks (key TEXT PRIMARY KEY, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE tags (name TEXT PRIMARY KEY, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE config (name TEXT PRIMARY KEY, value TEXT NOT NULL, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE tombstones (kind TEXT NOT NULL, name TEXT NOT NULL, log INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (kind, name)) WITHOUT ROWID;
    CREATE TABLE dead (kind TEXT NOT NULL, name TEXT NOT NULL, log INTEGER NOT NULL);
    CREATE INDEX dead_by_name ON dead (kind, name);
    CREATE INDEX dead_by_log ON dead (log);
    CREATE INDEX blocks_by_log ON blocks (log, offset);
    CREATE TABLE logs (log INTEGER PRIMARY KEY, size INTEGER NOT NULL, live INTEGER NOT NULL);
    CREATE TABLE locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
    PRAGMA user_version = 1;
  `);
  const insert = v1.prepare('INSERT INTO blocks (key, log, offset, length) VALUES (?, ?, ?, ?)');
  const keys = Array.from({ length: 3000 }, (_, i) => (i % 3 === 0 ? `key-${i}` : patternBytes(32, i + 1).toString('hex')));
  v1.transaction(() => keys.forEach((key, i) => insert.run(key, 1 + (i % 4), i * 1000, 500)))();
  v1.prepare("INSERT INTO meta (name, value) VALUES ('posLog', '4')").run();
  v1.close();

  const meta = Metadata.open(file, { create: false });
  try {
    for (const [i, key] of keys.entries()) assert.deepEqual(meta.lookup('block', key), { log: 1 + (i % 4), offset: i * 1000, length: 500 }, key);
    assert.equal(meta.getMeta('posLog'), '4');
    assert.deepEqual([...meta.listBlocks('', 10_000)].sort(), [...keys].sort());
    assert.deepEqual([...meta.blocksPerLog()].sort(), [[1, 750], [2, 750], [3, 750], [4, 750]]);
  } finally {
    meta.close();
  }
  const after = new Database(file, { readonly: true });
  try {
    assert.equal(after.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.deepEqual(after.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'blocks_by_log'").get(), { n: 0 });
    assert.deepEqual(after.prepare('SELECT typeof(key) AS type, count(*) AS n FROM blocks GROUP BY 1 ORDER BY 1').all(), [{ type: 'blob', n: 2000 }, { type: 'text', n: 1000 }]);
  } finally {
    after.close();
  }
});

test('check names a hex-keyed block whose index row points at the wrong offset, and only that one', async () => {
  const dir = path.join(scratch.dir, 'misplaced');
  const identifier = `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite 100000`;
  const keys = Array.from({ length: 40 }, (_, i) => patternBytes(32, 100 + i).toString('hex'));
  const backend = await openArchive(identifier, { spawnOwn: false });
  try {
    for (const [i, key] of keys.entries()) await backend.put(key, patternBytes(9000, i));
    assert.equal(((await backend.admin('check', [])).data as { ok: boolean }).ok, true);
  } finally {
    await backend.close();
  }
  const victim = keys[17] as string;
  const db = new Database(`${dir}/meta.sqlite`);
  db.prepare('UPDATE blocks SET offset = offset + 1 WHERE key = ?').run(Buffer.from(victim, 'hex'));
  db.close();
  const reopened = await openArchive(identifier, { spawnOwn: false });
  try {
    const report = await reopened.admin('check', []);
    assert.equal((report.data as { ok: boolean }).ok, false);
    assert.match(report.text, new RegExp(`block "${victim}" is indexed at log-\\d+ offset \\d+, where there is no valid record of it`));
    for (const key of keys) if (key !== victim) assert.doesNotMatch(report.text, new RegExp(key));
  } finally {
    await reopened.close();
  }
});

/**
 * Records applied in one batch (as a commit applies them) leave the index as
 * the same records applied one per transaction: a block replaced, removed,
 * put again after its removal, removed twice at the same place, a tag and a
 * setting; sizes and live bytes per log summed over the batch.
 */
test('records applied in one batch index as they do one at a time: values, removals, superseded logs, sizes and live bytes', () => {
  const A = 'aa'.repeat(32);
  const B = 'bb'.repeat(32);
  const C = 'cc'.repeat(32);
  const at = (log: number, offset: number, length: number) => ({ log, offset, length });
  const ops = [
    { type: RecordType.BlockPut, name: A, loc: at(1, 0, 100) },
    { type: RecordType.BlockPut, name: B, loc: at(1, 100, 100) },
    { type: RecordType.BlockPut, name: A, loc: at(1, 200, 100) },
    { type: RecordType.BlockRemoved, name: B, loc: at(1, 300, 50) },
    { type: RecordType.BlockPut, name: B, loc: at(2, 0, 100) },
    { type: RecordType.BlockPut, name: C, loc: at(2, 100, 100) },
    { type: RecordType.TagSet, name: 'daily', loc: at(2, 200, 60) },
    { type: RecordType.Config, name: 'commitInterval', value: '5', loc: at(2, 260, 40) },
    { type: RecordType.BlockPut, name: A, loc: at(1, 200, 100) },
    { type: RecordType.BlockRemoved, name: C, loc: at(2, 300, 50) },
    { type: RecordType.BlockRemoved, name: C, loc: at(2, 300, 50) },
  ];
  const state = (meta: Metadata) => ({
    values: [A, B, C].map((k) => meta.lookup('block', k)),
    tag: meta.lookup('tag', 'daily'),
    config: meta.configValues().get('commitInterval'),
    removals: [meta.removalsIn(1), meta.removalsIn(2)],
    superseded: [meta.supersededIn('block', A), meta.supersededIn('block', B), meta.supersededIn('block', C)],
    logs: meta.logUsage(),
  });
  const batched = Metadata.open(path.join(scratch.dir, 'batched.sqlite'), { create: true });
  const single = Metadata.open(path.join(scratch.dir, 'single.sqlite'), { create: true });
  try {
    batched.immediate(() => batched.applyAll(ops));
    for (const op of ops) single.immediate(() => single.apply(op));
    const expected = {
      values: [at(1, 200, 100), at(2, 0, 100), null],
      tag: at(2, 200, 60),
      config: '5',
      removals: [[], [{ kind: 'block', name: C, loc: at(2, 300, 50) }]],
      superseded: [[1], [1], [2]],
      // Log 1: A's 100 live bytes (B's removal record is live until B is put again, then not).
      // Log 2: B, the tag, the setting and C's removal (C's put was superseded by it).
      logs: [{ log: 1, size: 350, live: 100 }, { log: 2, size: 350, live: 250 }],
    };
    assert.deepEqual(state(batched), expected);
    assert.deepEqual(state(single), expected);
  } finally {
    batched.close();
    single.close();
  }
});
