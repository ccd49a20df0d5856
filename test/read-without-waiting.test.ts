/**
 * Reading small files without holding a thread on the disk
 * (src/archive/read-without-waiting.ts, native/readahead's readNowait): what
 * is cached is read at once, what is not is read in libuv's pool, and either
 * way the bytes are the file's. A file is made "not cached" for real by
 * writing it, syncing it and having the kernel drop its pages (`dd
 * iflag=nocache`), in a directory beside the build (dist/): on the
 * checkout's disk, not on a tmpfs, which keeps every page.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { nativeReadNowait } from '../src/archive/cold-prefetch.js';
import { makeEngine } from '../src/archive/block-engine.js';
import { Chunker, chunkSizes, gearTable } from '../src/archive/chunker.js';
import { blockKey } from '../src/archive/block-codec.js';
import { BlockType, maxPlaintext } from '../src/archive/format.js';
import { deriveKeys, newMasterKey } from '../src/archive/keys.js';
import { readWithoutWaiting } from '../src/archive/read-without-waiting.js';
import { askToDrop, diskScratchDir } from './support/page-cache.js';
import { patternBytes } from './support/scratch.js';

const scratch = diskScratchDir('read-test-');
const dir = scratch.dir;
after(() => scratch.remove());

/** A file of `data`, written, synced and dropped from the page cache. */
function uncachedFile(name: string, data: Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, data);
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  askToDrop([file]);
  return file;
}

async function readWhole(file: string, claim: number, offset = 0): Promise<{ bytes: number; buffer: Buffer }> {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(offset + claim);
    return { bytes: await readWithoutWaiting(fd, buffer, offset, claim), buffer };
  } finally {
    closeSync(fd);
  }
}

/** What readNowait answers for the first 4 KiB of `file`. */
function probe(file: string): number {
  assert.ok(nativeReadNowait !== null);
  const fd = openSync(file, 'r');
  try {
    return nativeReadNowait(fd, Buffer.alloc(4096), 0, 4096, 0);
  } finally {
    closeSync(fd);
  }
}

test('the native module is built here; where the file system reads without waiting, a file dropped from the page cache is reported as not cached (-2); either way it is read whole', async () => {
  assert.ok(nativeReadNowait !== null, 'native/readahead is built by npm ci');
  // A file just written is cached: its bytes, or -1 where the kernel or file system refuses RWF_NOWAIT
  // (an overlay file system on some kernels), and then every file is read the usual way.
  const warm = path.join(dir, 'probe');
  writeFileSync(warm, patternBytes(8192, 9));
  const supported = probe(warm);
  assert.ok(supported === 4096 || supported === -1, `readNowait of a cached file: ${supported}`);
  const data = patternBytes(40_000, 7);
  const file = uncachedFile('cold', data);
  if (supported === 4096) {
    // The kernel drops only the pages it can at that moment (one still in another CPU's batch of new pages
    // stays cached, which made this fail once in a full run): asked again, a few times, until it has.
    let answer = probe(file);
    for (let tries = 0; tries < 20 && answer !== -2; tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      askToDrop([file]);
      answer = probe(file);
    }
    assert.equal(answer, -2);
  }
  // One byte more than the file, as the snapshot claims: short only at the end.
  const { bytes, buffer } = await readWhole(file, data.length + 1, 100);
  assert.equal(bytes, data.length);
  assert.ok(buffer.subarray(100, 100 + bytes).equals(data));
});

test('a cached file is read at once: whole, up to a claim shorter than the file, and into an offset of the buffer', async () => {
  const data = patternBytes(30_000, 8);
  const file = path.join(dir, 'warm');
  writeFileSync(file, data);
  const whole = await readWhole(file, data.length + 1);
  assert.equal(whole.bytes, data.length);
  assert.ok(whole.buffer.subarray(0, whole.bytes).equals(data));
  const part = await readWhole(file, 1000, 5);
  assert.equal(part.bytes, 1000);
  assert.ok(part.buffer.subarray(5).equals(data.subarray(0, 1000)));
  const empty = path.join(dir, 'empty');
  writeFileSync(empty, '');
  assert.equal((await readWhole(empty, 1)).bytes, 0);
});

test('bad arguments to readNowait give -1 (the caller then reads the usual way), never a crash', () => {
  assert.ok(nativeReadNowait !== null);
  const fd = openSync(path.join(dir, 'warm'), 'r');
  try {
    assert.equal(nativeReadNowait(fd, Buffer.alloc(10), 5, 10, 0), -1, 'past the buffer');
    assert.equal(nativeReadNowait(-1, Buffer.alloc(10), 0, 10, 0), -1, 'no descriptor');
    assert.equal(nativeReadNowait(fd, Buffer.alloc(10), 0, 10, -1), -1, 'negative position');
  } finally {
    closeSync(fd);
  }
});

test('a block worker reads uncached small files (in the pool) and one that grew past its size hint into the same chunks as the in-thread chunker', async () => {
  const keys = deriveKeys(newMasterKey());
  const sizes = chunkSizes(maxPlaintext(16 * 1024 * 1024));
  const engine = makeEngine({ hashKey: keys.blockHash, encryptionKey: keys.block, compression: 'zstd', level: 3, workers: 1, chunker: { seed: keys.chunker, sizes } });
  try {
    const reader = engine.readFile;
    assert.ok(reader !== null);
    const cases = [
      { data: patternBytes(20_000, 1), hint: 20_000 },
      { data: patternBytes(3 * 1024 * 1024 + 5, 2), hint: 1000 },
      { data: patternBytes(1, 3), hint: 1 },
    ];
    await Promise.all(cases.map(async ({ data, hint }, i) => {
      const file = uncachedFile(`worker-${i}`, data);
      const chunker = new Chunker(gearTable(keys.chunker), sizes);
      const want = [...chunker.push(data), ...chunker.end()].map((c) => [blockKey(keys.blockHash, BlockType.data, c), c.length]);
      const got: Array<[string, number]> = [];
      let bytes = 0;
      for await (const window of reader(Buffer.from(file), hint)) {
        bytes += window.bytes;
        for (const b of window.blocks) got.push([b.key, b.size]);
      }
      assert.equal(bytes, data.length, `file ${i}`);
      assert.deepEqual(got, want, `file ${i}`);
    }));
  } finally {
    await engine.close();
  }
});

test('with CAIRN_NO_READ_NOWAIT=1 (or without the native module) files are read the usual way, synchronously, whole', () => {
  const data = patternBytes(50_000, 11);
  const file = uncachedFile('plain', data);
  const module = new URL('../src/archive/read-without-waiting.js', import.meta.url).href;
  const prefetch = new URL('../src/archive/cold-prefetch.js', import.meta.url).href;
  const script = `
    const { readWithoutWaiting } = await import(${JSON.stringify(module)});
    const { nativeReadNowait } = await import(${JSON.stringify(prefetch)});
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(${JSON.stringify(file)}, 'r');
    const buffer = Buffer.alloc(${data.length + 1});
    const bytes = await readWithoutWaiting(fd, buffer, 0, ${data.length + 1});
    closeSync(fd);
    process.stdout.write(JSON.stringify({ native: nativeReadNowait !== null, bytes, sum: buffer.subarray(0, bytes).toString('base64') }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, CAIRN_NO_READ_NOWAIT: '1' }, encoding: 'utf8' })) as { native: boolean; bytes: number; sum: string };
  assert.equal(out.native, false, 'the variable turns readNowait off');
  assert.equal(out.bytes, data.length);
  assert.equal(out.sum, data.toString('base64'));
});
