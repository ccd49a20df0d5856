/**
 * A snapshot started before its archive is unlocked (startSnapshot): the
 * walk goes on while the passphrase is stretched, using the file cache's
 * rows of the only archive in the cache file, and writes nothing until
 * `finish`. When those rows turn out to be another archive's, the walk is
 * done again; a snapshot given up stops walking.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { Archive } from '../src/archive/archive.js';
import { Extractor } from '../src/archive/extract.js';
import { FileCache } from '../src/archive/file-cache.js';
import { resolveEntry } from '../src/archive/snapshot-ref.js';
import { snapshotTree, startSnapshot } from '../src/archive/snapshot.js';
import type { Backend } from '../src/backends/backend.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { assertSameTree, walkTree } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-early-walk-');
after(() => scratch.remove());

const FILES = 400;

function makeSource(name: string): string {
  const src = path.join(scratch.dir, name);
  for (let d = 0; d < FILES / 10; d += 1) {
    mkdirSync(path.join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < 10; f += 1) writeFileSync(path.join(src, `d${d}`, `f${f}`), `directory ${d} file ${f}\n`.repeat(1 + f));
  }
  return src;
}

/** A memory archive whose writes are counted. */
class CountingBackend extends MemoryBackend {
  writes = 0;

  override async put(key: string, value: Uint8Array): Promise<void> {
    this.writes += 1;
    return super.put(key, value);
  }

  override async setTag(name: string, value: Uint8Array): Promise<void> {
    this.writes += 1;
    return super.setTag(name, value);
  }
}

async function newArchive(): Promise<{ archive: Archive; store: CountingBackend }> {
  const store = new CountingBackend(new MemoryStore(1024 * 1024));
  const archive = await Archive.initialise(new OrderedBackend(store), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  return { archive, store };
}

/** A cache file holding the rows of a first snapshot of `src` into `archive`, and that snapshot. */
async function cachedFirstSnapshot(archive: Archive, src: string, cacheFile: string): Promise<Awaited<ReturnType<typeof snapshotTree>>> {
  const cache = FileCache.open(cacheFile);
  try {
    return await snapshotTree(archive, [src], { tag: 't', cache, workers: 1 });
  } finally {
    cache.close();
  }
}

/** Lets the walk run until `done` (it waits on the listing thread, which takes real time to start), for 20 s at most. */
async function walkedUntil(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
}

async function restoreAndCompare(archive: Archive, result: Awaited<ReturnType<typeof snapshotTree>>, src: string, out: string): Promise<void> {
  const root = await resolveEntry(archive, result.record, [], 't');
  await new Extractor(archive).extract(root, path.join(scratch.dir, out));
  assertSameTree(walkTree(path.join(scratch.dir, out)), walkTree(src));
}

test('with the cache\'s rows, the whole tree is walked before finish without writing anything, and the result is the unchanged snapshot', async () => {
  const src = makeSource('same');
  const cacheFile = path.join(scratch.dir, 'same.sqlite');
  const { archive, store } = await newArchive();
  try {
    const firstResult = await cachedFirstSnapshot(archive, src, cacheFile);

    const cache = FileCache.open(cacheFile);
    try {
      cache.preload(archive.backend);
      const started = startSnapshot(archive.backend, [src], { tag: 't', cache, workers: 1 });
      const writesBefore = store.writes;
      assert.equal(await started.walksWithCache, true);
      await walkedUntil(() => started.progress.files === FILES);
      assert.equal(started.progress.files, FILES, 'every file walked before finish');
      assert.equal(started.progress.bytesCached > 0 && started.progress.bytesRead === 0, true, 'found in the cache, not read');
      assert.equal(store.writes, writesBefore, 'nothing written before finish');
      const result = await started.finish(archive);
      assert.equal(result.root?.key, firstResult.root?.key);
      assert.equal(result.record.stats.bytesRead, 0);
    } finally {
      cache.close();
    }
  } finally {
    await archive.close();
  }
});

test('rows of another archive taken before the unlock are not trusted: the tree is walked again and the snapshot restores from the unlocked archive', async () => {
  const src = makeSource('other');
  const cacheFile = path.join(scratch.dir, 'other.sqlite');
  const a = await newArchive();
  const b = await newArchive();
  try {
    await cachedFirstSnapshot(a.archive, src, cacheFile);
    // b holds copies of a's blocks (sealed under a's key): the rows' keys pass the existence check.
    let cursor: string | null = null;
    do {
      const [keys, next]: [string[], string | null] = await a.archive.backend.listBlocks(cursor, 1000);
      for (const key of keys) await b.archive.backend.put(key, (await a.archive.backend.get(key)) as Uint8Array);
      cursor = next;
    } while (cursor !== null);

    const cache = FileCache.open(cacheFile);
    try {
      // The cache file holds a's rows only.
      cache.preload(b.archive.backend as Backend);
      const started = startSnapshot(b.archive.backend, [src], { tag: 't', cache, workers: 1 });
      assert.equal(await started.walksWithCache, true, 'a\'s rows were taken (they are the only ones)');
      await walkedUntil(() => started.progress.files === FILES);
      const result = await started.finish(b.archive);
      assert.equal(result.record.stats.bytesCached, 0, 'nothing taken from a\'s rows');
      assert.ok(result.record.stats.bytesRead > 0);
      await restoreAndCompare(b.archive, result, src, 'other-out');
    } finally {
      cache.close();
    }
  } finally {
    await a.archive.close();
    await b.archive.close();
  }
});

test('a snapshot given up before finish (the unlock failed) stops walking and writes nothing', async () => {
  const src = makeSource('given-up');
  const { archive, store } = await newArchive();
  try {
    const writesBefore = store.writes;
    const started = startSnapshot(archive.backend, [src], { tag: 't', workers: 1 });
    assert.equal(await started.walksWithCache, false, 'no cache: the walk stops at the first file to read');
    started.abandon();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(started.progress.dirs, 0, 'no directory finished');
    assert.ok(started.progress.files < FILES, 'the walk stopped');
    assert.equal(store.writes, writesBefore);
    await assert.rejects(started.finish(archive), /given up/);
  } finally {
    await archive.close();
  }
});

test('a walk told to wait (`when` false, or `whenWarm` without a listing thread) starts only at finish, and gives the same snapshot', async () => {
  const src = makeSource('waiting');
  const cacheFile = path.join(scratch.dir, 'waiting.sqlite');
  const { archive } = await newArchive();
  try {
    const firstResult = await cachedFirstSnapshot(archive, src, cacheFile);
    const cache = FileCache.open(cacheFile);
    try {
      cache.preload(archive.backend);
      // Told by `when`, or asked to wait for the listing thread's verdict without a listing thread.
      for (const [options, early] of [[{}, { when: Promise.resolve(false) }], [{ listingThread: false }, { whenWarm: true }]] as const) {
        const started = startSnapshot(archive.backend, [src], { tag: 't', cache, workers: 1, ...options }, early);
        assert.equal(await started.walksWithCache, false);
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(started.progress.files, 0, 'nothing walked before finish');
        const result = await started.finish(archive);
        assert.equal(result.root?.key, firstResult.root?.key);
        assert.equal(result.record.stats.files, FILES);
      }
    } finally {
      cache.close();
    }
  } finally {
    await archive.close();
  }
});

test('a snapshot forgets the cache rows of files deleted since the last one, a whole directory\'s and one file of a directory still there (the cache does not grow with every file that ever was)', async () => {
  const { archive } = await newArchive();
  const src = makeSource('forgetting');
  const cacheFile = path.join(scratch.dir, 'forgetting.sqlite');
  try {
    await cachedFirstSnapshot(archive, src, cacheFile);
    rmSync(path.join(src, 'd3'), { recursive: true });
    rmSync(path.join(src, 'd5', 'f3'));
    await cachedFirstSnapshot(archive, src, cacheFile);
    const db = new Database(cacheFile, { readonly: true });
    try {
      assert.equal(db.prepare("SELECT count(*) FROM files WHERE path LIKE '%/d3/%'").pluck().get(), 0);
      assert.equal(db.prepare("SELECT count(*) FROM files WHERE path LIKE '%/d5/f3'").pluck().get(), 0, 'the row of the file deleted from d5');
      assert.equal(db.prepare('SELECT count(*) FROM files').pluck().get(), FILES - 11);
    } finally {
      db.close();
    }
  } finally {
    await archive.close();
  }
});
