/**
 * The listing thread of a snapshot (src/archive/listing-thread.ts): it lists
 * the directories ahead of the walk, in the walk's order, with the same
 * names and lstats the walk would get; a walk that leaves out more than the
 * thread may run ahead still finishes; and a snapshot made with the thread
 * is the snapshot made without it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { Archive } from '../src/archive/archive.js';
import { nativePrefetch } from '../src/archive/cold-prefetch.js';
import { optionalNativeFunction } from '../src/optional-native.js';
import { decodeListing, ListedStat, STAT_FIELDS, type ListedDirectory } from '../src/archive/listing.js';
import { ListingThread } from '../src/archive/listing-thread.js';
import { snapshotTree, startSnapshot } from '../src/archive/snapshot.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { defaultConfig } from '../src/cli/cairn/config.js';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { makeContext, testEnvironment } from './cairn-fixtures.js';
import { cachedFiles, diskScratchDir, dropFromPageCache } from './support/page-cache.js';
import { scratchDir, sleep } from './support/scratch.js';

const scratch = scratchDir('cairn-listing-thread-');
after(() => scratch.remove());

const SLASH = Buffer.from('/');

type NativeList = (dir: Buffer) => [names: Buffer, stats: BigInt64Array, failed: number[]] | null;
const nativeList = optionalNativeFunction<NativeList>('cairn-list-directory', 'listDirectory');

function makeTree(root: string): void {
  for (let a = 0; a < 5; a += 1) {
    for (let b = 0; b < 4; b += 1) {
      const dir = path.join(root, `a${a}`, `b${b}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 3; f += 1) writeFileSync(path.join(dir, `f${f}`), `${a}/${b}/${f}\n`.repeat(f + 1));
    }
  }
  // A name that is not UTF-8, a symbolic link to a directory (not followed), an empty directory.
  mkdirSync(Buffer.concat([Buffer.from(`${root}/caf`), Buffer.from([0xe9]), Buffer.from('/below')]), { recursive: true });
  symlinkSync('a1', path.join(root, 'link-to-a1'));
  mkdirSync(path.join(root, 'empty'));
}

/** The walk's order: depth first, names sorted as bytes. */
function walkOrder(dir: Buffer, out: Buffer[] = []): Buffer[] {
  out.push(dir);
  for (const name of readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
    const full = Buffer.concat([dir, SLASH, name]);
    if (lstatSync(full).isDirectory()) walkOrder(full, out);
  }
  return out;
}

/** Checks that a thread sends every directory of a fresh tree in the walk's order, with readdir's names and lstat's fields. */
async function sendsWhatReaddirAndLstatGive(root: string): Promise<void> {
  makeTree(root);
  execFileSync('mkfifo', [path.join(root, 'a0', 'fifo')]);
  const thread = new ListingThread([root]);
  try {
    const dirs = walkOrder(Buffer.from(root));
    assert.equal(dirs.length, 1 + 5 + 20 + 2 + 1);
    for (const dir of dirs) {
      const listing = await thread.take(dir);
      assert.ok(listing !== null, `${dir.toString('latin1')} listed by the thread`);
      const names = readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
      assert.deepEqual(listing.names, names);
      listing.stats.forEach((st, i) => {
        assert.ok(!(st instanceof Error));
        const real = lstatSync(Buffer.concat([dir, SLASH, names[i] as Buffer]), { bigint: true });
        for (const field of ['mode', 'uid', 'gid', 'size', 'mtimeNs', 'ctimeNs', 'mtimeMs', 'ino', 'nlink', 'dev', 'rdev'] as const) {
          assert.equal(st[field], real[field], `${field} of ${names[i]?.toString('latin1')}`);
        }
        for (const is of ['isDirectory', 'isFile', 'isSymbolicLink', 'isFIFO', 'isCharacterDevice', 'isBlockDevice', 'isSocket'] as const) {
          assert.equal(st[is](), real[is](), `${is} of ${names[i]?.toString('latin1')}`);
        }
      });
    }
    assert.equal(thread.listingsTaken, dirs.length);
    // Past the end of its walk the thread has nothing more: the walk lists for itself.
    assert.equal(await thread.take(Buffer.from(path.join(root, 'a0'))), null);
    assert.equal(await thread.cold.then(() => 'judged'), 'judged');
  } finally {
    thread.close();
  }
}

test('the thread sends every directory in the walk\'s order with the names and lstats readdir and lstat give (native/list-directory)', { skip: nativeList === null }, async () => {
  await sendsWhatReaddirAndLstatGive(path.join(scratch.dir, 'same-native'));
});

test('the thread sends every directory in the walk\'s order with the names and lstats readdir and lstat give (readdirSync and lstatSync)', async () => {
  process.env.CAIRN_NO_NATIVE_LIST = '1';
  try {
    await sendsWhatReaddirAndLstatGive(path.join(scratch.dir, 'same-js'));
  } finally {
    delete process.env.CAIRN_NO_NATIVE_LIST;
  }
});

test('native/list-directory lists a directory as readdir and lstat do, and gives null for what it cannot list', { skip: nativeList === null }, () => {
  const list = nativeList as NativeList;
  const root = path.join(scratch.dir, 'native');
  makeTree(root);
  const dir = Buffer.from(root);
  const [packed, stats, failed] = list(dir) as [Buffer, BigInt64Array, number[]];
  const names = readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
  assert.deepEqual(packed, Buffer.concat(names.flatMap((n) => [n, Buffer.from([0])])));
  assert.equal(stats.length, names.length * STAT_FIELDS);
  assert.deepEqual(failed, []);
  names.forEach((name, i) => {
    const real = lstatSync(Buffer.concat([dir, SLASH, name]), { bigint: true });
    const listed = new ListedStat(stats, i * STAT_FIELDS);
    for (const field of ['mode', 'uid', 'gid', 'size', 'mtimeNs', 'ctimeNs', 'ino', 'nlink', 'dev', 'rdev'] as const) assert.equal(listed[field], real[field], `${field} of ${name.toString('latin1')}`);
  });
  const [emptyNames, emptyStats] = list(Buffer.from(path.join(root, 'empty'))) as [Buffer, BigInt64Array, number[]];
  assert.equal(emptyNames.length + emptyStats.length, 0);
  assert.equal(list(Buffer.from(path.join(root, 'a0', 'b0', 'f0'))), null, 'a file');
  assert.equal(list(Buffer.from(path.join(root, 'missing'))), null, 'nothing there');
  assert.equal(list(Buffer.from('')), null, 'an empty path');
  assert.equal(list(Buffer.from('/tmp\0x')), null, 'a path with a NUL');
  assert.equal(list('/tmp' as unknown as Buffer), null, 'a string, not a Buffer');
});

test('a directory the walk leaves out is skipped over, and one whose listing failed throws its error, as readdir would', async () => {
  const root = path.join(scratch.dir, 'skips');
  makeTree(root);
  const thread = new ListingThread([root, path.join(root, 'a0', 'b0', 'f0'), path.join(scratch.dir, 'missing')], [path.join(root, 'a2')]);
  try {
    assert.ok(await thread.take(Buffer.from(root)));
    // a0 and a1 left out: a3 comes next, and what was sent of a0 and a1 is let go.
    const a3 = await thread.take(Buffer.from(path.join(root, 'a3')));
    assert.deepEqual(a3?.names.map((n) => n.toString()), ['b0', 'b1', 'b2', 'b3']);
    // a2 is excluded: the thread does not list it, the walk does.
    assert.equal(await thread.take(Buffer.from(path.join(root, 'a2'))), null);
  } finally {
    thread.close();
  }
  const failed: ListedDirectory = { seq: 0, dir: '/x', names: new Uint8Array(0), stats: new BigInt64Array(0), failed: [], error: { message: 'EACCES: permission denied, scandir \'/x\'', code: 'EACCES' } };
  assert.throws(() => decodeListing(failed), (err: NodeJS.ErrnoException) => err.code === 'EACCES' && /permission denied/.test(err.message));
  const partly: ListedDirectory = { seq: 1, dir: '/y', names: new Uint8Array(Buffer.from('a\0b\0')), stats: new BigInt64Array(2 * STAT_FIELDS), failed: [[1, 'ENOENT: gone', 'ENOENT']] };
  const listing = decodeListing(partly);
  assert.ok(listing.stats[0] instanceof ListedStat);
  assert.ok(listing.stats[1] instanceof Error && /gone/.test(listing.stats[1].message));
});

test('a snapshot leaving out more directories than the thread may list ahead is the snapshot made without the thread', { timeout: 120_000 }, async () => {
  const root = path.join(scratch.dir, 'wide');
  makeTree(root);
  // More directories than the thread runs ahead (2,048): the walk leaves them all out.
  for (let i = 0; i < 2200; i += 1) mkdirSync(path.join(root, 'a0', 'skipped', `d${i}`), { recursive: true });
  const thread = new ListingThread([root]);
  try {
    assert.ok(await thread.take(Buffer.from(root)));
    assert.ok(await thread.take(Buffer.from(path.join(root, 'a0'))));
    for (let b = 0; b < 4; b += 1) assert.ok(await thread.take(Buffer.from(path.join(root, 'a0', `b${b}`))));
    // The thread stops 2,048 directories ahead, inside a0/skipped: a1 is not coming, the walk lists it...
    assert.equal(await thread.take(Buffer.from(path.join(root, 'a1'))), null);
    // ...and the thread goes on from there.
    assert.deepEqual((await thread.take(Buffer.from(path.join(root, 'a1', 'b0'))))?.names.map(String), ['f0', 'f1', 'f2']);
  } finally {
    thread.close();
  }
  // A walk that leaves nothing out gets every listing from the thread, though the thread waits at its limit
  // again after each one taken (a walk that took the thread's wait for a skip made every listing itself).
  const whole = new ListingThread([root]);
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const dirs = walkOrder(Buffer.from(root));
    for (const dir of dirs) assert.ok(await whole.take(dir), `${dir.toString()} from the thread`);
    assert.equal(whole.listingsTaken, dirs.length);
  } finally {
    whole.close();
  }
  const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(new MemoryStore(1024 * 1024))), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  try {
    const include = (rel: string): boolean | null => (rel.startsWith('/a0/skipped/') ? false : null);
    const withThread = await snapshotTree(archive, [root], { tag: 't', workers: 1, include, listingThread: true });
    const without = await snapshotTree(archive, [root], { tag: 't', workers: 1, include, listingThread: false });
    assert.ok(withThread.root !== null);
    assert.deepEqual(withThread.root, without.root);
    assert.equal(withThread.record.stats.dirs, without.record.stats.dirs);
    assert.equal(withThread.record.stats.files, 5 * 4 * 3);
  } finally {
    await archive.close();
  }
});

test('for a snapshot that reads every file, the thread asks the kernel to read small files ahead (files dropped from the page cache for real, counted there with mincore)', { timeout: 60_000 }, async (t) => {
  const disk = diskScratchDir('prefetch-test-');
  t.after(() => disk.remove());
  const root = disk.dir;
  const sub = path.join(root, 'sub');
  mkdirSync(sub, { recursive: true });
  const files = Array.from({ length: 64 }, (_, i) => {
    const file = path.join(i % 2 === 0 ? root : sub, `f${i}`);
    writeFileSync(file, `file ${i}\n`.repeat(400));
    return file;
  });
  const walkAll = async (thread: ListingThread): Promise<void> => {
    for (const dir of [root, sub]) assert.ok(await thread.take(Buffer.from(dir)));
  };
  await dropFromPageCache(files);
  const without = new ListingThread([root], [], false);
  try {
    await walkAll(without);
    assert.equal(without.prefetched, 0, 'not asked: the snapshot has file cache rows');
    assert.equal(cachedFiles(files), 0, 'listing alone reads no file');
  } finally {
    without.close();
  }
  const asked = new ListingThread([root], [], true);
  try {
    await walkAll(asked);
    if (nativePrefetch === null) {
      assert.equal(asked.prefetched, 0, 'native/readahead is not built here');
      return;
    }
    // The thread tries every file while most it sees are not cached, at least the first 32 (then it samples
    // one in 32). Its check of a file can itself start the kernel's read, which on a fast disk may be done
    // before the check returns: the file then counts as cached, not as asked for (prefetched), so what
    // is asserted is where the files are, once the reads asked for have had time to finish.
    let cached = cachedFiles(files);
    for (let waited = 0; cached < 32 && waited < 3000; waited += 50) {
      await sleep(50);
      cached = cachedFiles(files);
    }
    assert.ok(cached >= 32, `${cached} of 64 files in the page cache (${asked.prefetched} asked for)`);
  } finally {
    asked.close();
  }
});

test('a snapshot whose archive cannot be opened makes no file cache (the command opens one early only when it exists) and leaves no thread running', async () => {
  testEnvironment();
  const dir = path.join(scratch.dir, 'no-archive');
  const src = path.join(dir, 'src');
  makeTree(src);
  const cacheFile = path.join(dir, 'cache', 'files.sqlite');
  const identifier = `backend-fs fs ${dir}/missing-archive`;
  const ctx = { configFile: path.join(dir, 'config.toml'), config: defaultConfig(identifier, cacheFile), passphrase: {}, kdf: { N: 1024, r: 8, p: 1 } };
  await assert.rejects(snapshotCommand(ctx, 't', [src], { quiet: true }));
  assert.equal(existsSync(cacheFile), false);
  // With a cache file there, and an archive: the snapshot goes through, its rows are there for the next one.
  const made = await makeContext(path.join(dir, 'made'), `backend-fs fs ${dir}/made/archive`, cacheFile);
  await snapshotCommand(made, 't', [src], { quiet: true });
  const second = await snapshotCommand(made, 't', [src], { quiet: true });
  assert.equal(second.record.stats.bytesRead, 0, 'every file found in the cache');
});

/** Takes every directory of `dirs` after the thread died: each answer is its listing or null (the walk lists it), none hangs. Returns the nulls. */
async function takeAfterDeath(thread: ListingThread, dirs: Buffer[]): Promise<number> {
  let nulls = 0;
  for (const dir of dirs) {
    const listing = await thread.take(dir);
    if (listing === null) nulls += 1;
    else assert.deepEqual(listing.names, readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare), dir.toString('latin1'));
  }
  return nulls;
}

test('a thread that dies (terminated by the test: a crash cannot be caused for real) leaves the walk to list what it did not send, with nothing waiting for ever', async () => {
  const root = path.join(scratch.dir, 'dies');
  for (let a = 0; a < 40; a += 1) for (let b = 0; b < 25; b += 1) mkdirSync(path.join(root, `a${a}`, `b${b}`), { recursive: true });
  const dirs = walkOrder(Buffer.from(root));
  assert.equal(dirs.length, 1 + 40 + 1000);
  // Dead before it could list much: the walk lists (nearly) everything itself.
  const early = new ListingThread([root]);
  try {
    await (early as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    assert.ok(await takeAfterDeath(early, dirs) > 0);
    assert.equal(await early.cold.then(() => 'judged'), 'judged');
  } finally {
    early.close();
  }
  // Dead mid-walk, with a listing asked for and not yet sent.
  const late = new ListingThread([root]);
  try {
    assert.ok(await late.take(dirs[0] as Buffer));
    const pending = takeAfterDeath(late, dirs.slice(1));
    await (late as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await pending;
  } finally {
    late.close();
  }
});

test('files the listing thread read ahead are not handed to the main thread\'s read-ahead again; without the thread\'s, they are', { timeout: 60_000 }, async () => {
  const root = path.join(scratch.dir, 'read-ahead-once');
  makeTree(root);
  const smallFiles = 5 * 4 * 3;
  const run = async (prefetch: boolean): Promise<{ toReadAhead: number; readsAhead: boolean }> => {
    const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(new MemoryStore(4 * 1024 * 1024))), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
    const listings = new ListingThread([root], [], prefetch);
    try {
      const started = startSnapshot(archive.backend, [root], { tag: 't', workers: 1, listings });
      await started.finish(archive);
      return { toReadAhead: started.progress.filesToReadAhead, readsAhead: listings.readsAhead };
    } finally {
      listings.close();
      await archive.close();
    }
  };
  const without = await run(false);
  assert.equal(without.readsAhead, false);
  assert.equal(without.toReadAhead, smallFiles, 'every file to read goes to the main thread\'s read-ahead');
  const withIt = await run(true);
  assert.equal(withIt.readsAhead, nativePrefetch !== null);
  assert.equal(withIt.toReadAhead, nativePrefetch !== null ? 0 : smallFiles);
});

/**
 * A directory its reader may read but not search (mode 0600 for its owner):
 * readdir gives the names, and every lstat (or fstatat) fails with EACCES.
 * Made for real, in a child process that owns the directory and is not root
 * (as root, permissions would not apply: the child then runs as nobody).
 */
test('names that cannot be stat\'ed (a directory readable but not searchable) come with lstat\'s own error, natively and with Node\'s calls alike', { timeout: 60_000 }, () => {
  // A directory of its own that the child may pass through (the scratch directory is 0700).
  const root = mkdtempSync(path.join(tmpdir(), 'cairn-unsearchable-'));
  chmodSync(root, 0o711);
  const dir = path.join(root, 'locked');
  mkdirSync(dir, { recursive: true });
  for (const name of ['one', 'two']) writeFileSync(path.join(dir, name), name);
  const asRoot = process.getuid?.() === 0;
  const nobody = 65534;
  if (asRoot) for (const p of [root, dir, path.join(dir, 'one'), path.join(dir, 'two')]) chownSync(p, nobody, nobody);
  chmodSync(dir, 0o600);
  const child = path.join(root, 'list-unsearchable.mjs');
  const listingThread = new URL('../src/archive/listing-thread.js', import.meta.url).href;
  writeFileSync(child, `
    import { lstatSync } from 'node:fs';
    const { ListingThread } = await import(${JSON.stringify(listingThread)});
    const [root, dir] = process.argv.slice(2);
    const thread = new ListingThread([root]);
    await thread.take(Buffer.from(root));
    const listing = await thread.take(Buffer.from(dir));
    thread.close();
    const own = (name) => { try { lstatSync(dir + '/' + name); return 'ok'; } catch (err) { return err.code; } };
    console.log(JSON.stringify(listing.names.map((n, i) => [n.toString(), listing.stats[i] instanceof Error ? listing.stats[i].code : 'ok', own(n.toString())])));
  `);
  chmodSync(child, 0o644);
  try {
    for (const env of [{}, { CAIRN_NO_NATIVE_LIST: '1' }]) {
      const out = execFileSync(process.execPath, [child, root, dir], { encoding: 'utf8', env: { ...process.env, ...env }, ...(asRoot ? { uid: nobody, gid: nobody } : {}) });
      assert.deepEqual(JSON.parse(out), [['one', 'EACCES', 'EACCES'], ['two', 'EACCES', 'EACCES']], JSON.stringify(env));
    }
  } finally {
    chmodSync(dir, 0o700);
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * The threads that warm directories ahead of the listing thread (native
 * list-directory's warmDirectories) belong to the thread that started them:
 * when it ends they stop and are joined before Node may unload the library
 * (threads left running in it crashed the process: a segfault seen in a
 * no-change snapshot), and a later thread starts its own. Observed in a
 * child process, by the threads' name in /proc.
 */
test('the directory-warming threads end with the worker that started them, even while busy, and a later worker starts them again (a child process, threads counted in /proc)', { timeout: 60_000 }, () => {
  const root = path.join(scratch.dir, 'warm-threads');
  const dirs: string[] = [];
  for (let a = 0; a < 40; a += 1) {
    for (let b = 0; b < 50; b += 1) {
      const dir = path.join(root, `a${a}`, `b${b}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'f'), 'x');
      dirs.push(dir);
    }
  }
  const list = path.join(scratch.dir, 'warm-list');
  writeFileSync(list, dirs.map((d) => `${d}\0`).join(''));
  const child = path.join(scratch.dir, 'warm-child.mjs');
  writeFileSync(child, `
    import { Worker } from 'node:worker_threads';
    import { readdirSync, readFileSync } from 'node:fs';
    const [modulePath, list] = process.argv.slice(2);
    const warmers = () => readdirSync('/proc/self/task').filter((t) => {
      try { return readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim() === 'cairn-warm'; } catch { return false; }
    }).length;
    const round = () => new Promise((resolve, reject) => {
      const worker = new Worker(\`
        const { parentPort, workerData } = require('node:worker_threads');
        const { warmDirectories } = require(workerData.modulePath);
        const paths = require('node:fs').readFileSync(workerData.list);
        // Three times 2,000: past the 4,096 that wait at most, the oldest dropped.
        for (let i = 0; i < 3; i += 1) warmDirectories(paths);
        parentPort.postMessage('warming');
        parentPort.on('message', () => process.exit(0));
      \`, { eval: true, workerData: { modulePath, list } });
      let during = -1;
      worker.on('message', () => { during = warmers(); worker.postMessage('end'); });
      worker.on('error', reject);
      worker.on('exit', () => resolve({ during, after: warmers() }));
    });
    const rounds = [await round(), await round()];
    console.log(JSON.stringify(rounds));
  `);
  const modulePath = createRequire(import.meta.url).resolve('cairn-list-directory');
  const out = execFileSync(process.execPath, [child, modulePath, list], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), [{ during: 4, after: 0 }, { during: 4, after: 0 }]);
});

test('warmDirectories takes anything without a crash: no argument drops what waits, a non-Buffer, an empty Buffer or relative paths are ignored', () => {
  type NativeWarm = (paths?: unknown) => undefined;
  const warm = optionalNativeFunction<NativeWarm>('cairn-list-directory', 'warmDirectories');
  assert.ok(warm !== null, 'native/list-directory is built by npm ci');
  for (const argument of [5, 'text', Buffer.alloc(0), Buffer.from('relative\0also/relative\0'), Buffer.from(`${scratch.dir}`), Buffer.from(`${scratch.dir}\0/missing-dir\0`)]) {
    assert.equal(warm(argument), undefined);
  }
  assert.equal(warm(), undefined);
});
