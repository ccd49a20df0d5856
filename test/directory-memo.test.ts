/**
 * The directory memo (src/archive/directory-memo.ts): a snapshot that finds
 * a directory's listing as it was takes its block from the file cache
 * instead of building it. Whatever changed in the tree, a snapshot made with
 * the memos must have the same root as one made with a fresh file cache
 * (every file read, every directory built): that is what each case checks.
 */
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, linkSync, mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { Archive } from '../src/archive/archive.js';
import { FileCache } from '../src/archive/file-cache.js';
import { snapshotTree, type SnapshotOptions } from '../src/archive/snapshot.js';
import type { TreeProgress } from '../src/archive/tree-writer.js';
import { parseRule } from '../src/archive/rules.js';
import { MemoryBackend } from '../src/backends/memory/memory-backend.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-directory-memo-');
after(() => scratch.remove());

let trees = 0;

/** A tree of 3 levels: 4 directories of 3 subdirectories of 5 files each, and files at every level. */
function makeTree(): string {
  trees += 1;
  const root = path.join(scratch.dir, `tree-${trees}`);
  for (let a = 0; a < 4; a += 1) {
    for (let b = 0; b < 3; b += 1) {
      const dir = path.join(root, `a${a}`, `b${b}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 5; f += 1) writeFileSync(path.join(dir, `f${f}.txt`), `file ${a}/${b}/${f}\n`.repeat(20 + f));
    }
    writeFileSync(path.join(root, `a${a}`, 'top.txt'), `top ${a}\n`);
  }
  writeFileSync(path.join(root, 'readme'), 'root file\n');
  return root;
}

interface Run {
  root: string;
  recalled: number;
  dirs: number;
  files: number;
  bytesRead: number;
}

class Fixture {
  readonly cacheFile: string;
  private fresh = 0;

  private constructor(readonly archive: Archive, readonly backend: MemoryBackend, readonly tree: string) {
    this.cacheFile = path.join(scratch.dir, `cache-${trees}.sqlite`);
  }

  static async make(): Promise<Fixture> {
    const backend = new MemoryBackend();
    const archive = await Archive.initialise(backend, async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
    return new Fixture(archive, backend, makeTree());
  }

  /** A snapshot with `cache` (the fixture's own file cache unless given). */
  async snapshot(options: Partial<SnapshotOptions> = {}, cacheFile = this.cacheFile): Promise<Run> {
    const cache = FileCache.open(cacheFile);
    let progress: TreeProgress | undefined;
    try {
      const result = await snapshotTree(this.archive, [this.tree], { tag: 't', workers: 1, cache, onStart: (p) => { progress = p; }, ...options });
      const p = progress as TreeProgress;
      return { root: result.root?.key ?? '', recalled: p.dirsRecalled, dirs: p.dirs, files: p.files, bytesRead: result.record.stats.bytesRead };
    } finally {
      cache.close();
    }
  }

  /** A snapshot with a cache of its own, empty: every file read, every directory built. */
  async freshRoot(options: Partial<SnapshotOptions> = {}): Promise<string> {
    this.fresh += 1;
    const run = await this.snapshot(options, path.join(scratch.dir, `fresh-${trees}-${this.fresh}.sqlite`));
    assert.equal(run.recalled, 0);
    return run.root;
  }

  /** A snapshot with the memos, checked against a fresh one; returns it. */
  async agrees(what: string, options: Partial<SnapshotOptions> = {}): Promise<Run> {
    const run = await this.snapshot(options);
    assert.equal(run.root, await this.freshRoot(options), `${what}: the root with memos differs from the root built afresh`);
    return run;
  }

  /** File rows and memos whose path is `dir` or below it. */
  rowsUnder(dir: string): number {
    const db = new Database(this.cacheFile, { readonly: true });
    try {
      const count = (table: string): number => db.prepare(`SELECT count(*) FROM ${table} WHERE path = ? OR substr(path, 1, ?) = ?`).pluck().get(dir, dir.length + 1, `${dir}/`) as number;
      return count('files') + count('dirs');
    } finally {
      db.close();
    }
  }

  memoRows(): number {
    const db = new Database(this.cacheFile, { readonly: true });
    try {
      return db.prepare('SELECT count(*) FROM dirs').pluck().get() as number;
    } finally {
      db.close();
    }
  }
}

const DIRS = 1 + 4 + 12;
const FILES = 1 + 4 + 60;

test('a snapshot of an unchanged tree takes every directory from its memo, reads nothing and counts the same files', async () => {
  const f = await Fixture.make();
  const first = await f.snapshot();
  assert.equal(first.recalled, 0);
  assert.equal(f.memoRows(), DIRS, 'a memo for every directory');
  const second = await f.agrees('unchanged');
  assert.equal(second.root, first.root);
  assert.equal(second.recalled, DIRS);
  assert.equal(second.dirs, DIRS);
  assert.equal(second.files, FILES);
  assert.equal(second.bytesRead, 0);
  // The rows of the files in recalled directories were kept (not looked up, not forgotten): one file changed, one read.
  writeFileSync(path.join(f.tree, 'a0', 'b0', 'f0.txt'), '12345\n');
  const third = await f.snapshot();
  assert.equal(third.bytesRead, 6);
  assert.equal(third.recalled, DIRS - 3);
});

test('a file changed, added, removed, renamed or chmodded deep in the tree: the same root as a fresh snapshot, the untouched directories recalled', async () => {
  const f = await Fixture.make();
  await f.snapshot();
  await f.snapshot();
  const b = (a: number, bb: number, name = ''): string => path.join(f.tree, `a${a}`, `b${bb}`, name);

  writeFileSync(b(0, 0, 'f0.txt'), 'changed, and of another size\n');
  let run = await f.agrees('a file changed');
  // a0/b0 is built again, and so are a0 and the root (its subdirectory's block changed); the rest is recalled.
  assert.equal(run.recalled, DIRS - 3);
  assert.equal(run.files, FILES);

  // The same size and a new mtime: the file is read again (the file cache and the memo see the mtime).
  writeFileSync(b(1, 1, 'f1.txt'), 'FILE 1/1/1\n'.repeat(21));
  utimesSync(b(1, 1, 'f1.txt'), new Date(), new Date(Date.now() + 5000));
  run = await f.agrees('a file rewritten at the same size');
  assert.equal(run.recalled, DIRS - 3);

  writeFileSync(b(2, 2, 'new.txt'), 'a new file\n');
  rmSync(b(3, 0, 'f4.txt'));
  await f.agrees('a file added and another removed');
  renameSync(b(2, 1), path.join(f.tree, 'a2', 'renamed'));
  await f.agrees('a directory renamed');
  // Its old name's rows and memo were in no directory the walk looked in: forgotten all the same.
  assert.equal(f.rowsUnder(b(2, 1)), 0);
  assert.equal(f.rowsUnder(path.join(f.tree, 'a2', 'renamed')), 5 + 1, 'its five files and its memo');
  chmodSync(b(0, 2, 'f3.txt'), 0o600);
  await f.agrees('a file chmodded');
  appendFileSync(path.join(f.tree, 'readme'), 'more\n');
  run = await f.agrees('a file at the root changed');
  assert.equal(run.recalled, DIRS - 1, 'every directory but the root');
});

test('a .cairn file changed, or the regex list, gives the root a fresh snapshot gives; a time-dependent rule or a regex list without its fingerprint makes no memo', async () => {
  const f = await Fixture.make();
  await f.snapshot();
  writeFileSync(path.join(f.tree, 'a1', '.cairn'), 'exclude name f2.txt\n');
  await f.agrees('rules added below a1');
  writeFileSync(path.join(f.tree, 'a1', '.cairn'), 'exclude name f3.txt\n');
  await f.agrees('rules changed below a1');
  const include = (rel: string): boolean | null => (rel.endsWith('f1.txt') ? false : null);
  const first = await f.agrees('a regex list', { include, includeFingerprint: 'f1 out' });
  const again = await f.agrees('the same regex list', { include, includeFingerprint: 'f1 out' });
  assert.equal(again.root, first.root);
  assert.equal(again.recalled, DIRS);
  const other = (rel: string): boolean | null => (rel.endsWith('f0.txt') ? false : null);
  const changed = await f.agrees('another regex list', { include: other, includeFingerprint: 'f0 out' });
  assert.equal(changed.recalled, 0, 'another fingerprint: no memo recalled');
  assert.notEqual(changed.root, first.root);
  const unnamed = await f.agrees('a regex list without a fingerprint', { include: other });
  assert.equal(unnamed.recalled, 0);

  const g = await Fixture.make();
  const recent = [parseRule('exclude modified-within 1h', null)];
  await g.snapshot({ rules: recent });
  assert.equal(g.memoRows(), 0, 'a rule that depends on the time: no memos');
  const second = await g.agrees('a time-dependent rule', { rules: recent });
  assert.equal(second.recalled, 0);
});

test('a directory with a hard link has no memo, and hard links come out as a fresh snapshot makes them', async () => {
  const f = await Fixture.make();
  linkSync(path.join(f.tree, 'a0', 'b0', 'f0.txt'), path.join(f.tree, 'a3', 'b2', 'link.txt'));
  await f.snapshot();
  const run = await f.agrees('hard links across directories');
  // a0/b0 and a3/b2 hold the links: built again (the same blocks), so their parents and the root are recalled.
  assert.equal(run.recalled, DIRS - 2);
  // Only the second link's directory changed: the first link must still be walked first, or the second becomes a file.
  writeFileSync(path.join(f.tree, 'a3', 'b2', 'beside-the-link.txt'), 'new\n');
  await f.agrees('the directory of the second link changed');
  rmSync(path.join(f.tree, 'a0', 'b0', 'f0.txt'));
  await f.agrees('one of the two links removed');
});

test('a block the archive lost: the directory naming it is built again and the file read again, so the block is back', async () => {
  const f = await Fixture.make();
  await f.snapshot();
  const cache = FileCache.open(f.cacheFile);
  let key: string;
  try {
    await cache.use(f.archive.keys.fingerprint, f.backend);
    const file = Buffer.from(path.join(f.tree, 'a2', 'b1', 'f3.txt'));
    const { ino, size, mtimeNs, ctimeNs } = (await import('node:fs')).statSync(file, { bigint: true });
    key = (cache.lookup(file, { size, mtimeNs, ctimeNs, ino }) as { key: string }).key;
  } finally {
    cache.close();
  }
  assert.equal(await f.backend.remove(key), true);
  const run = await f.agrees('a file block lost');
  assert.equal(run.recalled, DIRS - 1, 'a2/b1 built again, to the same block: a2 and the root recalled');
  assert.equal(await f.backend.exists(key), true, 'the lost block is stored again');

  // A directory block lost: that directory is built again (and stored); its parent's memo still holds.
  const rootKey = run.root;
  assert.equal(await f.backend.remove(rootKey), true);
  const again = await f.agrees('the root directory block lost');
  assert.equal(again.root, rootKey);
  assert.equal(again.recalled, DIRS - 1);
  assert.equal(await f.backend.exists(rootKey), true);

  // A directory whose block was lost and which is gone from the tree: its memo is forgotten too.
  const gone = path.join(f.tree, 'a2', 'b0');
  const db = new Database(f.cacheFile, { readonly: true });
  const goneKey = db.prepare('SELECT lower(hex(key)) FROM dirs WHERE path = ?').pluck().get(gone) as string;
  db.close();
  assert.equal(await f.backend.remove(goneKey), true);
  rmSync(gone, { recursive: true });
  await f.agrees('a directory lost and removed');
  assert.equal(f.memoRows(), DIRS - 1, 'no memo left for a2/b0');
});
