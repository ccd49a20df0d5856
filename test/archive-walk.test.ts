/**
 * The snapshot walk runs ahead of the file reading (at most 256 leaves) and
 * extract writes files alongside its walk: trees wider and deeper than those
 * limits still round-trip, and the same tree always gives the same root.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { Archive } from '../src/archive/archive.js';
import { makeEngine, type BlockEngine } from '../src/archive/block-engine.js';
import { BlockWriter } from '../src/archive/block-writer.js';
import { chunkSizes, gearTable } from '../src/archive/chunker.js';
import { TreeWriter } from '../src/archive/tree-writer.js';
import { Extractor } from '../src/archive/extract.js';
import { snapshotTree, startSnapshot } from '../src/archive/snapshot.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { parseSpec, resolveEntry, resolveSnapshot } from '../src/archive/snapshot-ref.js';
import { withArchive } from '../src/cli/cairn/context.js';
import { extract } from '../src/cli/cairn/extract.js';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { assertSameTree, CAIRN_CLI, cliEnvironment, makeContext, testEnvironment, walkTree } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-walk-');
after(() => scratch.remove());

test('a tree 1100 directories deep and 1500 files wide, with hard links across directories, round-trips and snapshots to the same root twice', { timeout: 120_000 }, async () => {
  const src = path.join(scratch.dir, 'src');
  // Deeper than the 256 leaves the walk may run ahead: a limit that counted directories would wait on itself here.
  let deep = path.join(src, 'deep');
  for (let i = 0; i < 1100; i += 1) deep = path.join(deep, 'd');
  mkdirSync(deep, { recursive: true });
  writeFileSync(path.join(deep, 'bottom'), 'at the bottom');
  mkdirSync(path.join(src, 'wide'), { recursive: true });
  for (let i = 0; i < 1500; i += 1) writeFileSync(path.join(src, 'wide', `f${i}`), `file ${i}\n`.repeat(1 + (i % 7)));
  // Hard links whose first name is walked before the other, in another directory.
  mkdirSync(path.join(src, 'z-links'));
  for (let i = 0; i < 20; i += 1) linkSync(path.join(src, 'wide', `f${i}`), path.join(src, 'z-links', `l${i}`));

  const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(new MemoryStore(1024 * 1024))), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  try {
    const first = await snapshotTree(archive, [src], { tag: 't', workers: 1 });
    const second = await snapshotTree(archive, [src], { tag: 't', workers: 1 });
    const root = await resolveEntry(archive, first.record, [], 't');
    const again = await resolveEntry(archive, second.record, [], 't');
    assert.equal(again.content?.key, root.content?.key, 'the same tree gives the same root block');
    const dest = path.join(scratch.dir, 'out');
    await new Extractor(archive).extract(root, dest);
    assertSameTree(walkTree(dest), walkTree(src));
  } finally {
    await archive.close();
  }
});

test('compressible files of every size round-trip through a splitlog archive, 1,200 directories of one file each', { timeout: 120_000 }, async () => {
  // zstd gives back a buffer of its own for 4 KiB and more, smaller ones are views of a shared pool; a
  // splitlog archive reads small records at once. (This caught a restore that handed such buffers to
  // another thread and then read their length: the files came back as 0 bytes read.)
  testEnvironment();
  const dir = path.join(scratch.dir, 'compressible');
  const src = path.join(dir, 'src');
  const sizes = [1, 100, 4095, 4096, 5000, 70_000, 600_000, 3 * 1024 * 1024];
  for (let i = 0; i < 1200; i += 1) sizes.push(4096 + i);
  sizes.forEach((size, i) => {
    const sub = path.join(src, `d${i}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(sub, `f${i}`), Buffer.alloc(size, `line ${i} of text\n`));
  });
  const ctx = await makeContext(dir, `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite`);
  await snapshotCommand(ctx, 'c', [src], { quiet: true });
  const dest = path.join(dir, 'out');
  const stats = await extract(ctx, 'c', dest, { quiet: true });
  assert.equal(stats.bytes, sizes.reduce((a, b) => a + b, 0));
  assertSameTree(walkTree(dest), walkTree(src));
});

test('extract lets the event loop turn while it walks: timers (the progress line) run before the last file is written', { timeout: 120_000 }, async () => {
  // From a splitlog archive every read of a small record, and every file-system call of the walk, is
  // synchronous: without turns of the loop the whole walk ran in promise reactions, and timers, the
  // asynchronous reads of big records and V8's freeing of array buffers all waited for its end.
  testEnvironment();
  const dir = path.join(scratch.dir, 'turns');
  const src = path.join(dir, 'src');
  for (let d = 0; d < 40; d += 1) {
    mkdirSync(path.join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < 50; f += 1) writeFileSync(path.join(src, `d${d}`, `f${f}`), `file ${d}/${f}\n`.repeat(1 + f));
  }
  const ctx = await makeContext(dir, `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite`);
  await snapshotCommand(ctx, 't', [src], { quiet: true });
  await withArchive(ctx, async (archive) => {
    const parsed = parseSpec('t');
    const { record } = await resolveSnapshot(archive, parsed);
    const extractor = new Extractor(archive);
    const seen: number[] = [];
    const timer = setInterval(() => seen.push(extractor.stats.files), 1);
    try {
      await extractor.extract(await resolveEntry(archive, record, parsed.path, 't'), path.join(dir, 'out'));
    } finally {
      clearInterval(timer);
    }
    assert.equal(extractor.stats.files, 2000);
    assert.ok(seen.some((files) => files > 0 && files < 2000), `the timer saw only ${JSON.stringify([...new Set(seen)])} files written`);
  });
  assertSameTree(walkTree(path.join(dir, 'out')), walkTree(src));
});

test('while the block worker reads a big file, small files are read on the main thread, and every byte round-trips', { timeout: 120_000 }, async () => {
  const src = path.join(scratch.dir, 'big-and-small');
  mkdirSync(path.join(src, 'small'), { recursive: true });
  // Walked first: 48 MiB of random bytes keep the worker busy while the walk reaches the small files.
  writeFileSync(path.join(src, 'a-big'), randomBytes(48 * 1024 * 1024));
  // Sizes around the 64 KiB limit of the main thread's reads, and an empty file.
  for (let i = 0; i < 400; i += 1) writeFileSync(path.join(src, 'small', `f${i}`), randomBytes((i * 211) % (80 * 1024)));
  const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(new MemoryStore(4 * 1024 * 1024))), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  try {
    const started = startSnapshot(archive.backend, [src], { tag: 't', workers: 1 });
    const result = await started.finish(archive);
    assert.ok(started.progress.filesReadHere > 0, 'some small files were read on the main thread');
    assert.ok(started.progress.filesReadHere < 400, 'not the big one, nor those over 64 KiB');
    const dest = path.join(scratch.dir, 'big-and-small-out');
    await new Extractor(archive).extract(await resolveEntry(archive, result.record, [], 't'), dest);
    assertSameTree(walkTree(dest), walkTree(src));
  } finally {
    await archive.close();
  }
});

test('small files read in a batch: one that grew after the walk saw it is read again whole, one that vanished is skipped with its error, and the rest round-trip (the test changes the files as their batch goes to the worker)', { timeout: 120_000 }, async () => {
  const src = path.join(scratch.dir, 'batched');
  mkdirSync(src, { recursive: true });
  for (let i = 0; i < 100; i += 1) writeFileSync(path.join(src, `f${i}`), `small file ${i}\n`.repeat(1 + i));
  writeFileSync(path.join(src, 'grows'), 'before\n');
  utimesSync(path.join(src, 'grows'), 1_700_000_000, 1_700_000_000);
  writeFileSync(path.join(src, 'vanishes'), 'here at lstat\n');
  const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(new MemoryStore(4 * 1024 * 1024))), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  const real = makeEngine({
    hashKey: archive.keys.blockHash, encryptionKey: archive.keys.block, compression: 'zstd', level: 3, workers: 1,
    chunker: { seed: archive.keys.chunker, sizes: chunkSizes(archive.maxPlaintext) },
  });
  const readSmall = real.readSmallFiles;
  assert.ok(readSmall !== null);
  let batches = 0;
  // The real engine, with the files changed on disk between the walk's lstat and the worker's read.
  const engine: BlockEngine = {
    copiesInput: real.copiesInput,
    hash: (type, plaintext) => real.hash(type, plaintext),
    seal: (block) => real.seal(block),
    drop: (block) => real.drop(block),
    readFile: real.readFile,
    readSmallFiles: (files) => {
      batches += 1;
      for (const file of files) {
        const name = path.basename(file.path.toString());
        if (name === 'grows') {
          appendFileSync(file.path, 'grown past its lstat size\n'.repeat(1000));
          // Its times as the walk saw them, so that the trees compare equal after the restore.
          utimesSync(file.path, 1_700_000_000, 1_700_000_000);
        }
        if (name === 'vanishes') unlinkSync(file.path);
      }
      return readSmall(files);
    },
    close: () => real.close(),
  };
  const skipped: Array<[string, string]> = [];
  // Whole seconds, so that they can be put back exactly after the unlink below changes them.
  utimesSync(src, 1_700_000_000, 1_700_000_000);
  try {
    const writer = new BlockWriter(archive.backend, engine);
    const tree = new TreeWriter({ writer, gear: gearTable(archive.keys.chunker), sizes: chunkSizes(archive.maxPlaintext), maxPlaintext: archive.maxPlaintext, onSkip: (p, reason) => skipped.push([p, reason]) });
    const { rootEntry } = await tree.snapshotPaths([src]);
    await writer.flush();
    assert.ok(rootEntry !== undefined);
    assert.ok(batches >= 1 && batches <= 8, `${batches} batches for 102 files`);
    assert.deepEqual(skipped.map(([p]) => p), ['/vanishes']);
    assert.match((skipped[0] as [string, string])[1], /ENOENT/);
    const dest = path.join(scratch.dir, 'batched-out');
    await new Extractor(archive).extract(rootEntry, dest);
    // The unlink changed the directory's times after the walk's lstat: put back what the snapshot saw.
    utimesSync(src, 1_700_000_000, 1_700_000_000);
    assertSameTree(walkTree(dest), walkTree(src));
    assert.equal(readFileSync(path.join(dest, 'grows'), 'utf8'), `before\n${'grown past its lstat size\n'.repeat(1000)}`);
  } finally {
    await engine.close();
    await archive.close();
  }
});

/**
 * A small file the snapshot may list but not open (mode 0000, owned by
 * another user when the tests run as root: the child then runs as nobody)
 * goes through the batch read like the others and comes back with open's
 * own error: skipped and said so, the rest stored.
 */
test('a small file that cannot be opened is skipped with its EACCES through the batch read, and the others are stored (a cairn child that may not read it)', { timeout: 60_000 }, () => {
  const root = mkdtempSync(path.join(tmpdir(), 'cairn-unreadable-'));
  chmodSync(root, 0o711);
  const tree = path.join(root, 'tree');
  mkdirSync(tree);
  for (const name of ['a', 'b', 'locked']) writeFileSync(path.join(tree, name), `the file ${name}\n`);
  const asRoot = process.getuid?.() === 0;
  const nobody = 65534;
  if (asRoot) for (const p of [root, tree, ...['a', 'b', 'locked'].map((n) => path.join(tree, n))]) chownSync(p, nobody, nobody);
  chmodSync(path.join(tree, 'locked'), 0);
  const config = path.join(root, 'config.toml');
  const cairn = (...args: string[]) => spawnSync(process.execPath, [CAIRN_CLI, '--config', config, ...args], {
    encoding: 'utf8', env: cliEnvironment({ HOME: root, CAIRN_SEAL_WORKERS: '1' }), ...(asRoot ? { uid: nobody, gid: nobody } : {}),
  });
  try {
    const init = cairn('init', '--archive', `backend-fs fs ${root}/archive`, '--file-cache', path.join(root, 'files.sqlite'));
    assert.equal(init.status, 0, init.stderr);
    const snap = cairn('snapshot', 't', tree);
    assert.equal(snap.status, 0, snap.stderr);
    assert.match(snap.stderr, /skipped \/locked: EACCES: permission denied, open/);
    assert.match(snap.stderr, /1 skipped/);
    const ls = cairn('ls', 't');
    assert.equal(ls.status, 0, ls.stderr);
    assert.match(ls.stdout, /\ba\n[\s\S]*\bb\n/);
    assert.doesNotMatch(ls.stdout, /locked/);
    assert.equal(cairn('cat', 't/b').stdout, 'the file b\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
