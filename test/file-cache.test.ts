/**
 * The file cache (src/archive/file-cache.ts): rows are named by the archive
 * key's fingerprint, only rows whose key the archive still has are trusted,
 * and `preload` reads the rows and confirms their keys before the archive is
 * unlocked (the fingerprint is only known after), when the file holds the
 * rows of one archive.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { Archive } from '../src/archive/archive.js';
import { FileCache, type FileIdentity } from '../src/archive/file-cache.js';
import { snapshotTree } from '../src/archive/snapshot.js';
import { MemoryBackend } from '../src/backends/memory/memory-backend.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-file-cache-');
after(() => scratch.remove());

const ID: FileIdentity = { size: 10n, mtimeNs: 1n, ctimeNs: 2n, ino: 3n };
const KEY_A = 'aa'.repeat(32);
const KEY_B = 'bb'.repeat(32);
const KEY_GONE = 'cc'.repeat(32);

/** A memory backend that counts existsMany calls, and fails the first `failures` of them. */
class CountingBackend extends MemoryBackend {
  calls = 0;
  failures = 0;

  override async existsMany(keys: string[]): Promise<boolean[]> {
    this.calls += 1;
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('existsMany failed (injected)');
    }
    return super.existsMany(keys);
  }
}

async function filled(name: string, rows: Array<[archive: string, file: string, key: string]>): Promise<string> {
  const file = path.join(scratch.dir, name);
  const cache = FileCache.open(file);
  const byArchive = new Map<string, Array<[string, string]>>();
  for (const [archive, f, key] of rows) byArchive.set(archive, [...(byArchive.get(archive) ?? []), [f, key]]);
  for (const [archive, list] of byArchive) {
    await cache.use(archive, new MemoryBackend());
    for (const [f, key] of list) cache.stage(Buffer.from(f), ID, { level: 0, key });
    cache.commit();
  }
  cache.close();
  return file;
}

async function backendWith(keys: string[]): Promise<CountingBackend> {
  const backend = new CountingBackend();
  for (const key of keys) await backend.put(key, Buffer.from(key));
  backend.calls = 0;
  return backend;
}

test('preload confirms the keys of the only archive in the file before use, and use trusts only keys the archive has', async () => {
  const file = await filled('one.sqlite', [['fp1', '/a', KEY_A], ['fp1', '/b', KEY_B], ['fp1', '/gone', KEY_GONE]]);
  const backend = await backendWith([KEY_A, KEY_B]);
  const cache = FileCache.open(file);
  try {
    cache.preload(backend);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(backend.calls, 1, 'the keys were asked about before use');
    const present = await cache.use('fp1', backend);
    assert.equal(backend.calls, 1, 'use took the preloaded answer');
    assert.deepEqual([...present].sort(), [KEY_A, KEY_B]);
    assert.deepEqual(cache.lookup(Buffer.from('/a'), ID), { level: 0, key: KEY_A });
    assert.equal(cache.lookup(Buffer.from('/gone'), ID), null, 'a key the archive lost is not trusted');
    assert.equal(cache.lookup(Buffer.from('/a'), { ...ID, mtimeNs: 9n }), null, 'a changed file is not trusted');
  } finally {
    cache.close();
  }
});

test('with the rows of two archives, nothing is preloaded and use reads the rows of its own archive', async () => {
  const file = await filled('two.sqlite', [['fp1', '/a', KEY_A], ['fp2', '/b', KEY_B]]);
  const backend = await backendWith([KEY_A, KEY_B]);
  const cache = FileCache.open(file);
  try {
    cache.preload(backend);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(backend.calls, 0);
    assert.deepEqual([...(await cache.use('fp2', backend))], [KEY_B]);
    assert.equal(cache.lookup(Buffer.from('/a'), ID), null, 'another archive\'s row');
    assert.deepEqual(cache.lookup(Buffer.from('/b'), ID), { level: 0, key: KEY_B });
  } finally {
    cache.close();
  }
});

test('a preload for another archive than the one unlocked is not used, and new rows go to the unlocked one', async () => {
  const file = await filled('other.sqlite', [['fp1', '/a', KEY_A]]);
  const backend = await backendWith([KEY_A]);
  const cache = FileCache.open(file);
  try {
    cache.preload(backend);
    assert.deepEqual([...(await cache.use('fp-new', backend))], []);
    assert.equal(cache.lookup(Buffer.from('/a'), ID), null);
    cache.stage(Buffer.from('/n'), ID, { level: 1, key: KEY_B });
    cache.commit();
  } finally {
    cache.close();
  }
  const again = FileCache.open(file);
  try {
    await again.use('fp-new', await backendWith([KEY_B]));
    assert.deepEqual(again.lookup(Buffer.from('/n'), ID), { level: 1, key: KEY_B });
  } finally {
    again.close();
  }
});

test('a preload that fails (existsMany failing, injected) is done again by use, whose failure the caller sees', async () => {
  const file = await filled('failing.sqlite', [['fp1', '/a', KEY_A]]);
  const backend = await backendWith([KEY_A]);
  const cache = FileCache.open(file);
  try {
    backend.failures = 1;
    cache.preload(backend);
    assert.deepEqual([...(await cache.use('fp1', backend))], [KEY_A]);
    assert.equal(backend.calls, 2);
    backend.failures = 1;
    await assert.rejects(cache.use('fp1', backend), /injected/);
  } finally {
    cache.close();
  }
});

test('assume answers lookups before use with the only archive\'s preloaded rows; use then says whether they were the unlocked archive\'s', async () => {
  const file = await filled('assume.sqlite', [['fp1', '/a', KEY_A], ['fp1', '/gone', KEY_GONE]]);
  const backend = await backendWith([KEY_A]);
  for (const unlocked of ['fp1', 'fp-other']) {
    const cache = FileCache.open(file);
    try {
      assert.equal(await cache.assume(), false, 'nothing to assume before preload');
      cache.preload(backend);
      assert.equal(await cache.assume(), true);
      assert.equal(cache.assumedRows(), true);
      assert.deepEqual(cache.lookup(Buffer.from('/a'), ID), { level: 0, key: KEY_A });
      assert.equal(cache.lookup(Buffer.from('/gone'), ID), null, 'only rows whose key the archive has');
      await cache.use(unlocked, backend);
      assert.equal(cache.assumedWrongly(), unlocked !== 'fp1');
      assert.equal(cache.lookup(Buffer.from('/a'), ID) !== null, unlocked === 'fp1', 'after use, the unlocked archive\'s rows only');
    } finally {
      cache.close();
    }
  }
});

test('assume takes an empty file as no rows (never wrong), and refuses a file with two archives\' rows; hasRows tells the two apart', async () => {
  const empty = FileCache.open(path.join(scratch.dir, 'assume-empty.sqlite'));
  try {
    // No rows: a snapshot will read every file (the listing thread then reads small files ahead).
    assert.equal(empty.hasRows(), false);
    empty.preload(new MemoryBackend());
    assert.equal(await empty.assume(), true);
    assert.equal(empty.assumedRows(), false);
    await empty.use('fp1', new MemoryBackend());
    assert.equal(empty.assumedWrongly(), false);
  } finally {
    empty.close();
  }
  const two = FileCache.open(await filled('assume-two.sqlite', [['fp1', '/a', KEY_A], ['fp2', '/b', KEY_B]]));
  try {
    assert.equal(two.hasRows(), true);
    two.preload(await backendWith([KEY_A, KEY_B]));
    assert.equal(await two.assume(), false);
    assert.equal(two.lookup(Buffer.from('/a'), ID), null);
  } finally {
    two.close();
  }
});

test('a path that is not UTF-8 is cached and found under its own bytes only', async () => {
  const latin = Buffer.from([0x2f, 0x63, 0x61, 0x66, 0xe9]); // "/caf\xe9": Latin-1, not UTF-8
  const utf8 = Buffer.from('/café');
  const file = path.join(scratch.dir, 'bytes.sqlite');
  const cache = FileCache.open(file);
  try {
    await cache.use('fp1', new MemoryBackend());
    cache.stage(latin, ID, { level: 0, key: KEY_A });
    cache.commit();
  } finally {
    cache.close();
  }
  const again = FileCache.open(file);
  try {
    await again.use('fp1', await backendWith([KEY_A]));
    assert.deepEqual(again.lookup(latin, ID), { level: 0, key: KEY_A });
    assert.equal(again.lookup(utf8, ID), null);
  } finally {
    again.close();
  }
});

test('the cache file is readable by its owner only, also one made before with a wider mode', async () => {
  const file = path.join(scratch.dir, 'mode.sqlite');
  FileCache.open(file).close();
  assert.equal(statSync(file).mode & 0o777, 0o600);
  chmodSync(file, 0o644);
  FileCache.open(file).close();
  assert.equal(statSync(file).mode & 0o777, 0o600);
});

test('rows of a version 1 cache file (paths as BLOBs) are kept when it is opened', async () => {
  const file = path.join(scratch.dir, 'v1.sqlite');
  const latin = Buffer.from([0x2f, 0x78, 0xff]);
  const old = new Database(file);
  old.exec(`CREATE TABLE files (archive TEXT NOT NULL, path BLOB NOT NULL, size TEXT NOT NULL, mtime TEXT NOT NULL,
    ctime TEXT NOT NULL, inode TEXT NOT NULL, level INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (archive, path)) WITHOUT ROWID`);
  const insert = old.prepare('INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  insert.run('fp1', Buffer.from('/a'), '10', '1', '2', '3', 0, Buffer.from(KEY_A, 'hex'));
  insert.run('fp1', latin, '10', '1', '2', '3', 1, Buffer.from(KEY_B, 'hex'));
  old.pragma('user_version = 1');
  old.close();
  const cache = FileCache.open(file);
  try {
    await cache.use('fp1', await backendWith([KEY_A, KEY_B]));
    assert.deepEqual(cache.lookup(Buffer.from('/a'), ID), { level: 0, key: KEY_A });
    assert.deepEqual(cache.lookup(latin, ID), { level: 1, key: KEY_B });
  } finally {
    cache.close();
  }
});

test('a version 2 cache file keeps its file rows when opened, and gains the directory memos\' table (empty, also one a newer version left)', async () => {
  const file = await filled('v2.sqlite', [['fp1', '/a', KEY_A]]);
  const old = new Database(file);
  old.exec('DROP TABLE dirs');
  old.exec('CREATE TABLE dirs (archive TEXT, path TEXT, something TEXT)');
  old.exec("INSERT INTO dirs VALUES ('fp1', '/', 'from another version')");
  old.pragma('user_version = 2');
  old.close();
  const cache = FileCache.open(file);
  try {
    await cache.use('fp1', await backendWith([KEY_A]));
    assert.deepEqual(cache.lookup(Buffer.from('/a'), ID), { level: 0, key: KEY_A });
    assert.equal(cache.recallDirectory('/'), undefined);
  } finally {
    cache.close();
  }
  const db = new Database(file, { readonly: true });
  try {
    assert.equal(db.pragma('user_version', { simple: true }), 3);
    assert.equal(db.prepare('SELECT count(*) FROM dirs').pluck().get(), 0);
  } finally {
    db.close();
  }
});

test('forget deletes the rows of files under the snapshot\'s roots that it did not look up, and keeps those elsewhere', async () => {
  const file = await filled('forget.sqlite', [
    ['fp1', '/r/seen', KEY_A], ['fp1', '/r/gone', KEY_A], ['fp1', '/r/sub/gone', KEY_B], ['fp1', '/r/lost', KEY_GONE],
    ['fp1', '/rx/other-root', KEY_A], ['fp1', '/elsewhere', KEY_B], ['fp2', '/r/another-archive', KEY_A],
  ]);
  const cache = FileCache.open(file);
  try {
    await cache.use('fp1', await backendWith([KEY_A, KEY_B]));
    assert.deepEqual(cache.lookup(Buffer.from('/r/seen'), ID), { level: 0, key: KEY_A });
    // '/r/gone', '/r/sub/gone' (not looked up) and '/r/lost' (its key gone from the archive): 3 rows.
    assert.equal(cache.forget(['/r']), 3);
    assert.equal(cache.lookup(Buffer.from('/r/gone'), ID), null);
  } finally {
    cache.close();
  }
  const db = new Database(file, { readonly: true });
  try {
    const left = db.prepare('SELECT archive, path FROM files ORDER BY archive, path').raw().all();
    assert.deepEqual(left, [['fp1', '/elsewhere'], ['fp1', '/r/seen'], ['fp1', '/rx/other-root'], ['fp2', '/r/another-archive']]);
  } finally {
    db.close();
  }
});

test('forget of a file given as a root deletes that file\'s row only, and of / every row not looked up', async () => {
  const file = await filled('forget-roots.sqlite', [['fp1', '/f', KEY_A], ['fp1', '/f2', KEY_A], ['fp1', '/d/g', KEY_A]]);
  const backend = await backendWith([KEY_A]);
  const cache = FileCache.open(file);
  try {
    await cache.use('fp1', backend);
    assert.equal(cache.forget(['/f']), 1, 'the snapshot of /f did not find it: its row goes, /f2 stays');
    assert.equal(cache.lookup(Buffer.from('/f2'), ID) !== null, true);
    assert.equal(cache.forget(['/']), 1, '/f2 was looked up just now; /d/g was not');
    assert.equal(cache.lookup(Buffer.from('/d/g'), ID), null);
  } finally {
    cache.close();
  }
});

test('forget keeps the rows of a directory whose memo was used (its files not looked up), and deletes those of files gone from one walked and memoed again', async () => {
  const file = await filled('forget-memos.sqlite', [['fp1', '/r/kept/a', KEY_A], ['fp1', '/r/walked/seen', KEY_A], ['fp1', '/r/walked/gone', KEY_A]]);
  const cache = FileCache.open(file);
  try {
    await cache.use('fp1', await backendWith([KEY_A]));
    cache.keepDirectory('/r/kept');
    assert.notEqual(cache.lookup(Buffer.from('/r/walked/seen'), ID), null);
    cache.stageDirectory('/r/walked', { digest: 'd', subs: '', ref: { level: 0, key: KEY_A }, files: 1, bytes: 10 });
    assert.equal(cache.forget(['/r']), 1, '/r/walked/gone only');
    assert.equal(cache.lookup(Buffer.from('/r/walked/gone'), ID), null);
    assert.notEqual(cache.lookup(Buffer.from('/r/kept/a'), ID), null);
  } finally {
    cache.close();
  }
});

test('findUnseen finds ahead the rows forget may delete: a file looked up after it stays, one still unseen goes, and forget of other roots reads every row', async () => {
  const file = await filled('forget-ahead.sqlite', [
    ['fp1', '/r/early', KEY_A], ['fp1', '/r/late', KEY_A], ['fp1', '/r/gone', KEY_A], ['fp1', '/elsewhere', KEY_A],
  ]);
  const cache = FileCache.open(file);
  try {
    cache.findUnseen(['/r']);
    await cache.use('fp1', await backendWith([KEY_A]));
    assert.notEqual(cache.lookup(Buffer.from('/r/early'), ID), null);
    cache.findUnseen(['/r']);
    // Looked up after the rows were found ahead (a directory whose files the walk takes last): still kept.
    assert.notEqual(cache.lookup(Buffer.from('/r/late'), ID), null);
    // A row that was not there when they were found is not looked at again (rows come only from this snapshot's files).
    const db = new Database(file);
    db.prepare('INSERT INTO files (archive, path, size, mtime, ctime, inode, level, key) VALUES (?, ?, ?, ?, ?, ?, ?, unhex(?))').run('fp1', '/r/after', '1', '1', '1', '1', 0, KEY_A);
    db.close();
    assert.equal(cache.forget(['/r']), 1, '/r/gone only');
    const left = new Database(file, { readonly: true });
    try {
      assert.deepEqual(left.prepare('SELECT path FROM files ORDER BY path').pluck().all(), ['/elsewhere', '/r/after', '/r/early', '/r/late']);
    } finally {
      left.close();
    }
    // Found ahead for /r, forgotten for /: every row is read, and /elsewhere and /r/after (never looked up) go.
    cache.findUnseen(['/r']);
    assert.equal(cache.forget(['/']), 2);
  } finally {
    cache.close();
  }
});

test('a file cache locked by another program when the snapshot is stored: the snapshot succeeds with a warning, and the next one reads the files again', { timeout: 60_000 }, async () => {
  const src = path.join(scratch.dir, 'locked-src');
  mkdirSync(src, { recursive: true });
  for (let i = 0; i < 20; i += 1) writeFileSync(path.join(src, `f${i}`), `file ${i}\n`.repeat(100));
  const file = path.join(scratch.dir, 'locked.sqlite');
  const archive = await Archive.initialise(new MemoryBackend(), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  const cache = FileCache.open(file);
  // Another writer (a second cairn, an sqlite3 shell) holds the write lock past SQLite's 5 s wait.
  const other = new Database(file);
  other.exec('BEGIN IMMEDIATE');
  const warnings: string[] = [];
  let result: Awaited<ReturnType<typeof snapshotTree>>;
  try {
    result = await snapshotTree(archive, [src], { tag: 't', workers: 1, cache, onWarning: (m) => warnings.push(m) });
  } finally {
    other.exec('ROLLBACK');
    other.close();
    cache.close();
  }
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0] as string, /file cache .*locked\.sqlite was not updated \(database is locked\): the next snapshot reads these files again/);
  assert.equal((await archive.getTag('t'))?.head, result.id, 'the snapshot is stored and the tag moved');
  // Nothing was cached: the next snapshot reads every file again, and caches them this time.
  const again = FileCache.open(file);
  try {
    const second = await snapshotTree(archive, [src], { tag: 't', workers: 1, cache: again, onWarning: (m) => warnings.push(m) });
    assert.equal(second.record.stats.bytesRead, 10 * 700 + 10 * 800, 'every file read again');
    const third = await snapshotTree(archive, [src], { tag: 't', workers: 1, cache: again, onWarning: (m) => warnings.push(m) });
    assert.equal(third.record.stats.bytesRead, 0, 'and cached by the second');
    assert.equal(warnings.length, 1);
  } finally {
    again.close();
  }
});
