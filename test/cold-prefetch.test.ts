/**
 * The read-ahead of small files on a cold cache (src/archive/cold-prefetch.ts):
 * it reads what is queued while its reads wait on the disk, turns itself off
 * when they come back fast, and passes over files it cannot read. A cold
 * page cache cannot be made by a test without root and dropping the whole
 * machine's cache: "slow" is the constructor's threshold, 0 us here, with
 * the native module left out (null). With native/readahead (Linux), the
 * kernel says whether a file is cached: these files, just written, are.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { symlinkSync } from 'node:fs';
import { ColdPrefetch, nativePrefetch, nativePrefetchMany } from '../src/archive/cold-prefetch.js';
import { optionalNativeFunction } from '../src/optional-native.js';
import { cachedFiles, diskScratchDir, dropFromPageCache, pageCached } from './support/page-cache.js';
import { scratchDir, sleep } from './support/scratch.js';

const scratch = scratchDir('cairn-prefetch-');
after(() => scratch.remove());

const dir = path.join(scratch.dir, 'files');
mkdirSync(dir);
const files = Array.from({ length: 200 }, (_, i) => {
  const file = path.join(dir, `f${i}`);
  writeFileSync(file, `file ${i}\n`.repeat(50));
  return Buffer.from(file);
});

test('while reads are slow (every read, with a threshold of 0 us) every queued file is read', async () => {
  const prefetch = new ColdPrefetch(0, null);
  for (const file of files) prefetch.add(file);
  await prefetch.idle();
  assert.equal(prefetch.read, 200);
});

test('reads that come back fast (these files were just written) turn it off, but for one file in 32', async () => {
  const prefetch = new ColdPrefetch(1_000_000, null);
  for (const file of files) {
    prefetch.add(file);
    await prefetch.idle();
  }
  // 32 reads to judge the cache warm, then one in 32 of the other 168.
  assert.equal(prefetch.read, 32 + Math.floor(168 / 32));
});

test('a file that cannot be read is passed over', async () => {
  const prefetch = new ColdPrefetch(0, null);
  prefetch.add(Buffer.from(path.join(dir, 'missing')));
  prefetch.add(Buffer.from(dir));
  prefetch.add(files[0] as Buffer);
  await prefetch.idle();
  assert.equal(prefetch.read, 3);
});

test('a backlog longer than the walk runs ahead (256 files) is skipped from its oldest end', async () => {
  const prefetch = new ColdPrefetch(0, null);
  for (let round = 0; round < 15; round += 1) for (const file of files) prefetch.add(file);
  await prefetch.idle();
  // One slice of 2 ms reads some of the first files, then only the newest 256 remain.
  assert.ok(prefetch.read >= 256 && prefetch.read < 2000, `read ${prefetch.read} of 3,000 queued`);
});

test('native/readahead: files just written are found cached and turn it off as fast reads do; what cannot be opened answers -1', { skip: process.platform !== 'linux' && 'native/readahead is built for Linux only' }, async () => {
  assert.notEqual(nativePrefetch, null, 'native/readahead is built (an optional dependency, built by npm ci)');
  const prefetch = nativePrefetch as NonNullable<typeof nativePrefetch>;
  // 0: cached; 2: this file system cannot tell (tmpfs), and the timed read decides.
  assert.ok([0, 2].includes(prefetch(files[0] as Buffer)));
  const link = path.join(dir, 'link');
  symlinkSync(files[0] as Buffer, link);
  assert.equal(prefetch(Buffer.from(link)), -1, 'a symlink is not followed');
  assert.equal(prefetch(Buffer.from(path.join(dir, 'missing'))), -1);
  assert.equal(prefetch(Buffer.from(`${files[0] as Buffer}\0x`)), -1, 'a name with a NUL byte is refused, not cut short');
  const withNative = new ColdPrefetch(1_000_000);
  for (const file of files) {
    withNative.add(file);
    await withNative.idle();
  }
  assert.equal(withNative.read, 32 + Math.floor(168 / 32));
});

test('native/readahead: willNeed has the kernel read the part of a file it names into the page cache in the background, not the part before it; bad arguments answer an errno', { skip: process.platform !== 'linux' && 'native/readahead is built for Linux only' }, async () => {
  const willNeed = optionalNativeFunction<(fd: number, position: number, length: number) => number>('cairn-readahead', 'willNeed');
  assert.notEqual(willNeed, null, 'native/readahead is built (an optional dependency, built by npm ci)');
  const advise = willNeed as NonNullable<typeof willNeed>;
  const disk = diskScratchDir('.test-willneed-');
  try {
    const file = path.join(disk.dir, 'big');
    writeFileSync(file, Buffer.alloc(8 * 1024 * 1024, 7));
    await dropFromPageCache([file]);
    assert.equal(pageCached(file, 6 * 1024 * 1024), false);
    const fd = openSync(file, 'r');
    try {
      assert.equal(advise(fd, 4 * 1024 * 1024, 4 * 1024 * 1024), 0);
      for (let tries = 0; !pageCached(file, 6 * 1024 * 1024) && tries < 100; tries += 1) await sleep(20);
      assert.equal(pageCached(file, 6 * 1024 * 1024), true, 'the part named is read in');
      assert.equal(pageCached(file, 0), false, 'the part before it is not');
      assert.equal(advise(fd, 0, 0), 22, 'EINVAL for nothing to read');
      assert.equal(advise(-1, 0, 1), 22, 'EINVAL for a negative descriptor');
    } finally {
      closeSync(fd);
    }
    assert.equal(advise(fd, 0, 1), 9, 'EBADF for a closed descriptor');
  } finally {
    disk.remove();
  }
});

/** Files dropped from the page cache, asked for with prefetchMany in a child process (`env`): its answers, and then how many of the files came into the page cache. */
async function prefetchManyElsewhere(files: string[], env: NodeJS.ProcessEnv): Promise<{ answers: number[]; cached: number }> {
  await dropFromPageCache(files);
  const script = `
    const { nativePrefetchMany } = await import(${JSON.stringify(new URL('../src/archive/cold-prefetch.js', import.meta.url).href)});
    const files = ${JSON.stringify(files)};
    const answers = new Int8Array(files.length);
    nativePrefetchMany(Buffer.concat(files.flatMap((file) => [Buffer.from(file), Buffer.alloc(1)])), Uint32Array.from(files, () => 3000), answers);
    console.log(JSON.stringify([...answers]));`;
  const answers = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' })) as number[];
  let cached = cachedFiles(files);
  for (let tries = 0; cached < files.length && tries < 100; tries += 1) {
    await sleep(20);
    cached = cachedFiles(files);
  }
  return { answers, cached };
}

test('native/readahead: without io_uring (CAIRN_NO_IO_URING=1, as where a kernel or seccomp filter refuses it) prefetchMany asks for each file on its own, with the same answers', { skip: process.platform !== 'linux' && 'native/readahead is built for Linux only' }, async () => {
  const disk = diskScratchDir('.test-prefetch-one-');
  try {
    const files = Array.from({ length: 70 }, (_, i) => {
      const file = path.join(disk.dir, `f${i}`);
      writeFileSync(file, `file ${i}\n`.repeat(300));
      return file;
    });
    for (const env of [{ CAIRN_NO_IO_URING: '1' }, {}]) {
      const { answers, cached } = await prefetchManyElsewhere(files, env);
      assert.equal(answers.length, files.length);
      assert.ok(answers.every((answer) => [0, 1, 2].includes(answer)), answers.join(','));
      assert.ok(answers.filter((answer) => answer !== 0).length >= 60, `most were asked for (${JSON.stringify(env)}): ${answers.join(',')}`);
      assert.equal(cached, files.length, `every file is read in (${JSON.stringify(env)})`);
    }
  } finally {
    disk.remove();
  }
});

test('native/readahead: prefetchMany asks for many files in one call (over one submission\'s 64), the rest of a file longer than its read too; each file answers as prefetch does; bad arguments answer -1', { skip: process.platform !== 'linux' && 'native/readahead is built for Linux only' }, async () => {
  assert.notEqual(nativePrefetchMany, null, 'native/readahead is built (an optional dependency, built by npm ci)');
  const prefetchMany = nativePrefetchMany as NonNullable<typeof nativePrefetchMany>;
  const disk = diskScratchDir('.test-prefetch-many-');
  try {
    const small = Array.from({ length: 100 }, (_, i) => {
      const file = path.join(disk.dir, `f${i}`);
      writeFileSync(file, `file ${i}\n`.repeat(300 + i));
      return file;
    });
    // Longer than the 64 KiB each file's read asks for.
    const long = path.join(disk.dir, 'long');
    writeFileSync(long, Buffer.alloc(512 * 1024, 3));
    const link = path.join(disk.dir, 'link');
    symlinkSync(small[0] as string, link);
    const files = [...small, long];
    await dropFromPageCache(files);
    const asked = [small[0] as string, path.join(disk.dir, 'missing'), link, ...small.slice(1), long];
    const paths = Buffer.concat(asked.flatMap((file) => [Buffer.from(file), Buffer.alloc(1)]));
    const sizes = Uint32Array.from(asked, (file) => (file === long ? 512 * 1024 : file.endsWith('missing') || file === link ? 10 : 3000));
    const answers = new Int8Array(asked.length);
    assert.equal(prefetchMany(paths, sizes, answers), asked.length);
    assert.deepEqual([answers[1], answers[2]], [-1, -1], 'a missing file and a symlink (not followed) cannot be opened');
    // 1: not cached, reading asked for; 2: this file system cannot tell (asked for anyway); 0 only where the
    // kernel's read was done before its check returned (a fast disk).
    for (const [i, answer] of answers.entries()) if (i !== 1 && i !== 2) assert.ok([0, 1, 2].includes(answer), `answer ${answer} for ${asked[i]}`);
    assert.ok(answers.filter((answer) => answer === 1 || answer === 2).length >= 90, `most were asked for: ${answers.join(',')}`);
    let cached = cachedFiles(files);
    for (let tries = 0; (cached < files.length || !pageCached(long, 400 * 1024)) && tries < 100; tries += 1) {
      await sleep(20);
      cached = cachedFiles(files);
    }
    assert.equal(cached, files.length, 'every file is read in');
    assert.equal(pageCached(long, 400 * 1024), true, 'and the long file past its first read');
    // Asked again, the files are cached (or the file system cannot tell).
    const again = new Int8Array(files.length);
    prefetchMany(Buffer.concat(files.flatMap((file) => [Buffer.from(file), Buffer.alloc(1)])), Uint32Array.from(files, () => 3000), again);
    assert.ok(again.every((answer) => answer === 0 || answer === 2), `cached now: ${again.join(',')}`);
    const one = Buffer.from(`${small[0] as string}\0`);
    assert.equal(prefetchMany(Buffer.from(small[0] as string), Uint32Array.of(1), new Int8Array(1)), -1, 'paths must end with a zero byte');
    assert.equal(prefetchMany(one, Uint32Array.of(1, 2), new Int8Array(1)), -1, 'no room for every answer');
    assert.equal(prefetchMany(one, new Uint32Array(0), new Int8Array(0)), 0, 'no sizes: no file');
    assert.equal(prefetchMany(Buffer.alloc(0), new Uint32Array(0), new Int8Array(0)), 0);
  } finally {
    disk.remove();
  }
});

test('native/readahead: prefetchMany\'s io_uring ring belongs to the thread that called it and is closed when that thread ends', { skip: process.platform !== 'linux' && 'native/readahead is built for Linux only' }, async () => {
  const rings = (): number => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[io_uring]';
    } catch {
      return false; // the descriptor readdir used, closed since
    }
  }).length;
  const script = path.join(scratch.dir, 'ring-worker.mjs');
  writeFileSync(script, `
    import { parentPort } from 'node:worker_threads';
    const { nativePrefetchMany } = await import(${JSON.stringify(new URL('../src/archive/cold-prefetch.js', import.meta.url).href)});
    const files = ${JSON.stringify(files.slice(0, 4).map((file) => file.toString()))};
    nativePrefetchMany(Buffer.concat(files.flatMap((file) => [Buffer.from(file), Buffer.alloc(1)])), Uint32Array.from(files, () => 500), new Int8Array(files.length));
    parentPort.postMessage('asked');
    parentPort.once('message', () => parentPort.close());`);
  const before = rings();
  const worker = new Worker(script);
  await once(worker, 'message');
  const during = rings();
  worker.postMessage('end');
  await once(worker, 'exit');
  // One more while the worker lives where io_uring can be set up here; none where it cannot (each file went its own way).
  assert.ok(during === before + 1 || during === before, `${during} rings while the worker lived, ${before} before`);
  assert.equal(rings(), before, 'the worker\'s ring is closed with it');
});
