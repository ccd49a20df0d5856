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
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { symlinkSync } from 'node:fs';
import { ColdPrefetch, nativePrefetch } from '../src/archive/cold-prefetch.js';
import { optionalNativeFunction } from '../src/optional-native.js';
import { diskScratchDir, dropFromPageCache, pageCached } from './support/page-cache.js';
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
