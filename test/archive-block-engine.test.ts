import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { test } from 'node:test';
import { BlockCodec, blockKey } from '../src/archive/block-codec.js';
import { makeEngine, type HeldBlock } from '../src/archive/block-engine.js';
import { Chunker, chunkSizes, gearTable } from '../src/archive/chunker.js';
import { BlockType, maxPlaintext } from '../src/archive/format.js';
import { deriveKeys, newMasterKey } from '../src/archive/keys.js';
import { patternBytes, scratchDir } from './support/scratch.js';

const keys = deriveKeys(newMasterKey());
const sizes = chunkSizes(maxPlaintext(16 * 1024 * 1024));

function expected(data: Buffer): Array<{ key: string; plaintext: Buffer }> {
  const chunker = new Chunker(gearTable(keys.chunker), sizes);
  return [...chunker.push(data), ...chunker.end()].map((c) => ({ key: blockKey(keys.blockHash, BlockType.data, c), plaintext: Buffer.from(c) }));
}

/** An engine of `workers` block workers that read files with the test's chunker. */
function fileReadingEngine(workers: number, readAhead = false) {
  return makeEngine({ hashKey: keys.blockHash, encryptionKey: keys.block, compression: 'zstd', level: 3, workers, chunker: { seed: keys.chunker, sizes }, readAhead });
}

test('block workers read files (small ones packed into shared windows, one that grew past its lstat size and one that shrank, big ones in windows), one after the other and all at once, into the same chunks as the in-thread chunker, and every held chunk seals to its own bytes after all were read', async () => {
  const scratch = scratchDir();
  const engine = fileReadingEngine(2);
  const codec = new BlockCodec(keys.block, 'zstd', 3);
  try {
    // Twelve files of 900 KB fill more than one shared window; 2 MiB and 9 MiB go through windows; one is given a size hint far too small.
    const files: Array<{ data: Buffer; hint: number }> = [];
    for (let i = 0; i < 12; i += 1) files.push({ data: patternBytes(900_000 + i, i + 1), hint: 900_000 + i });
    files.push({ data: patternBytes(10, 50), hint: 10 });
    files.push({ data: patternBytes(2 * 1024 * 1024, 51), hint: 2 * 1024 * 1024 });
    files.push({ data: patternBytes(3 * 1024 * 1024 + 7, 52), hint: 100 });
    files.push({ data: patternBytes(9 * 1024 * 1024, 53), hint: 9 * 1024 * 1024 });
    // One that shrank after lstat (the hint is bigger than the file).
    files.push({ data: patternBytes(5000, 54), hint: 60_000 });
    const reader = engine.readFile;
    assert.ok(reader !== null);
    const held: Array<{ block: HeldBlock; plaintext: Buffer }> = [];
    const readOne = async (i: number, file: { data: Buffer; hint: number }, prefix: string): Promise<void> => {
      const p = path.join(scratch.dir, `${prefix}${i}`);
      writeFileSync(p, file.data);
      const want = expected(file.data);
      const got: HeldBlock[] = [];
      let bytes = 0;
      for await (const window of reader(Buffer.from(p), file.hint)) {
        got.push(...window.blocks);
        bytes += window.bytes;
      }
      assert.equal(bytes, file.data.length, `file ${prefix}${i}: bytes read`);
      assert.deepEqual(got.map((b) => [b.key, b.size]), want.map((w) => [w.key, w.plaintext.length]), `file ${prefix}${i}: chunks`);
      got.forEach((block, j) => held.push({ block, plaintext: (want[j] as { plaintext: Buffer }).plaintext }));
    };
    // One after the other, then all at once (the workers' reads overlap and share their windows).
    for (const [i, file] of files.entries()) await readOne(i, file, 'one-');
    await Promise.all(files.map((file, i) => readOne(i, file, 'all-')));
    // Sealed only now: a window reused too early would show here as wrong bytes.
    for (const { block, plaintext } of held) {
      const sealed = await engine.seal(block);
      assert.ok(codec.open(block.key, BlockType.data, sealed).equals(plaintext), `block ${block.key}`);
    }
    // Small blocks (named in this thread) seal and open too.
    const small = await engine.hash(BlockType.directory, Buffer.from('a small directory block'));
    assert.equal(codec.open(small.key, BlockType.directory, await engine.seal(small)).toString(), 'a small directory block');
  } finally {
    await engine.close();
    scratch.remove();
  }
});

test('a block worker asked to read ahead reads the next window of a big file before it is asked for, while this thread is busy (one not asked to never does): the same chunks, sealing to their own bytes, and a file given up while a window is read ahead is closed once that read is done', { skip: process.platform !== 'linux' }, async () => {
  const scratch = scratchDir();
  const engine = fileReadingEngine(1, true);
  const plain = fileReadingEngine(1);
  const codec = new BlockCodec(keys.block, 'zstd', 3);
  const openFiles = (): number => readdirSync('/proc/self/fd').length;
  try {
    const reader = engine.readFile;
    assert.ok(reader !== null);
    const data = patternBytes(40 * 1024 * 1024, 61);
    const file = path.join(scratch.dir, 'big');
    writeFileSync(file, data);
    const want = expected(data);
    const readWhole = async (through = engine): Promise<HeldBlock[]> => {
      const got: HeldBlock[] = [];
      for await (const window of (through.readFile as NonNullable<typeof reader>)(Buffer.from(file), data.length)) {
        // Each window's blocks are sealed (their window goes back to the worker's spares), then this thread is busy for a while.
        for (const block of window.blocks) {
          const plaintext = (want[got.length] as { plaintext: Buffer }).plaintext;
          assert.ok(codec.open(block.key, BlockType.data, await through.seal(block)).equals(plaintext), `block ${got.length}`);
          got.push(block);
        }
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      return got;
    };
    // The first file fills the worker's spare windows; the second is read ahead from them.
    for (let round = 0; round < 2; round += 1) {
      const got = await readWhole();
      assert.deepEqual(got.map((b) => [b.key, b.size]), want.map((w) => [w.key, w.plaintext.length]), `round ${round}: chunks`);
    }
    assert.ok((engine.windowsReadAhead ?? 0) >= 5, `${engine.windowsReadAhead} of the 20 windows read ahead`);
    for (let round = 0; round < 2; round += 1) assert.equal((await readWhole(plain)).length, want.length);
    assert.equal(plain.windowsReadAhead, 0, 'an engine not asked to read ahead does not');
    // Given up after two windows: a window is being read ahead, and the file is closed once that read is done.
    const before = openFiles();
    const windows = reader(Buffer.from(file), data.length);
    for (let i = 0; i < 2; i += 1) {
      const { value } = await windows.next();
      for (const block of (value as { blocks: HeldBlock[] }).blocks) engine.drop(block);
    }
    assert.equal(openFiles(), before + 1, 'the file is open while it is read');
    await windows.return(undefined);
    for (let i = 0; i < 100 && openFiles() > before; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(openFiles(), before, 'closed after the window read ahead');
    // And the worker goes on: the file is read whole again.
    assert.equal((await readWhole()).length, want.length);
  } finally {
    await engine.close();
    await plain.close();
    scratch.remove();
  }
});

test('a block worker reads a batch of small files in one round trip: the same chunks as the in-thread chunker, a missing file as its error, one that grew past its lstat size as grew, one that shrank as what it holds; two batches at once share the windows, and every chunk seals to its own bytes', async () => {
  const scratch = scratchDir();
  const engine = fileReadingEngine(1);
  const codec = new BlockCodec(keys.block, 'zstd', 3);
  try {
    const readSmall = engine.readSmallFiles;
    assert.ok(readSmall !== null);
    const batch = (prefix: string, seed: number): Array<{ path: Buffer; size: number; data: Buffer | null }> => {
      // Forty files of 200 KB overflow a 4 MiB shared window; one of 1 MiB (two chunks at most); an empty one.
      const files: Array<{ path: Buffer; size: number; data: Buffer | null }> = [];
      for (let i = 0; i < 40; i += 1) files.push({ path: Buffer.from(path.join(scratch.dir, `${prefix}${i}`)), size: 200_000 + i, data: patternBytes(200_000 + i, seed + i) });
      files.push({ path: Buffer.from(path.join(scratch.dir, `${prefix}mib`)), size: 1024 * 1024, data: patternBytes(1024 * 1024, seed + 100) });
      files.push({ path: Buffer.from(path.join(scratch.dir, `${prefix}empty`)), size: 0, data: Buffer.alloc(0) });
      files.push({ path: Buffer.from(path.join(scratch.dir, `${prefix}missing`)), size: 10, data: null });
      files.push({ path: Buffer.from(path.join(scratch.dir, `${prefix}grew`)), size: 1000, data: patternBytes(5000, seed + 101) });
      files.push({ path: Buffer.from(path.join(scratch.dir, `${prefix}shrank`)), size: 60_000, data: patternBytes(7000, seed + 102) });
      for (const f of files) if (f.data !== null) writeFileSync(f.path, f.data);
      return files;
    };
    const first = batch('a-', 1);
    const second = batch('b-', 500);
    const [readsA, readsB] = await Promise.all([readSmall(first), readSmall(second)]);
    const held: Array<{ block: HeldBlock; plaintext: Buffer }> = [];
    for (const [files, reads] of [[first, readsA], [second, readsB]] as const) {
      assert.equal(reads.length, files.length);
      files.forEach((file, i) => {
        const read = reads[i];
        const name = file.path.toString();
        if (file.data === null) {
          assert.ok(read !== undefined && 'error' in read && /ENOENT/.test(read.error), `${name}: ${JSON.stringify(read)}`);
        } else if (file.data.length > file.size) {
          assert.deepEqual(read, { grew: true }, name);
        } else {
          assert.ok(read !== undefined && 'blocks' in read, name);
          assert.equal(read.bytes, file.data.length, `${name}: bytes`);
          const want = expected(file.data);
          assert.deepEqual(read.blocks.map((b) => [b.key, b.size]), want.map((w) => [w.key, w.plaintext.length]), `${name}: chunks`);
          read.blocks.forEach((block, j) => held.push({ block, plaintext: (want[j] as { plaintext: Buffer }).plaintext }));
        }
      });
    }
    // Sealed only now, in reverse and all at once (several to a message): a window reused while its
    // chunks were held, or seals handed back in the wrong order, would show here as wrong bytes.
    await Promise.all(held.reverse().map(async ({ block, plaintext }) => {
      assert.ok(codec.open(block.key, BlockType.data, await engine.seal(block)).equals(plaintext), `block ${block.key}`);
    }));
  } finally {
    await engine.close();
    scratch.remove();
  }
});

function residentMiB(): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;
}

test('a block worker gives back the pages of the spare windows nobody took for a while: after three big files read at once, the resident size drops', { skip: process.platform !== 'linux' }, async () => {
  const scratch = scratchDir();
  const engine = fileReadingEngine(1);
  try {
    const reader = engine.readFile;
    assert.ok(reader !== null);
    const files = [0, 1, 2].map((i) => {
      const file = path.join(scratch.dir, `big${i}`);
      writeFileSync(file, patternBytes(24 * 1024 * 1024, 70 + i));
      return file;
    });
    await Promise.all(files.map(async (file) => {
      for await (const window of reader(Buffer.from(file), 24 * 1024 * 1024)) for (const block of window.blocks) engine.drop(block);
    }));
    // Windows of 8 MiB (4 MiB read, 4 MiB for the largest chunk): three files at once left several spare.
    const before = residentMiB();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const after = residentMiB();
    assert.ok(before - after >= 16, `resident ${before.toFixed(0)} MiB before, ${after.toFixed(0)} MiB after: expected at least two windows (16 MiB) less`);
  } finally {
    await engine.close();
    scratch.remove();
  }
});

/** This process's threads (Linux). */
function threads(): number {
  return readdirSync('/proc/self/task').length;
}

test('a worker thread is started only when a block needs one: small blocks are named and sealed in this thread', async () => {
  const engine = fileReadingEngine(1);
  const codec = new BlockCodec(keys.block, 'zstd', 3);
  try {
    const before = threads();
    for (let i = 0; i < 20; i += 1) {
      const plaintext = patternBytes(1000 + i, i);
      const block = await engine.hash(BlockType.directory, plaintext);
      assert.ok(codec.open(block.key, BlockType.directory, await engine.seal(block)).equals(plaintext));
    }
    assert.equal(threads(), before, 'no thread for small blocks');
    const big = patternBytes(200_000, 99);
    const block = await engine.hash(BlockType.data, big);
    assert.ok(threads() > before, 'a worker for a big one');
    assert.ok(codec.open(block.key, BlockType.data, await engine.seal(block)).equals(big));
  } finally {
    await engine.close();
  }
});

test('a block worker that dies (terminated by the test: a crash cannot be caused for real) fails what it held and everything asked later, batches of small files too: nothing waits for ever', async () => {
  const engine = fileReadingEngine(1);
  try {
    const held = await engine.hash(BlockType.data, patternBytes(200_000, 5));
    const worker = (engine as unknown as { workers: Array<Worker | null> }).workers[0];
    assert.ok(worker);
    await worker.terminate();
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(engine.seal(held), /block worker exited/);
    await assert.rejects(engine.hash(BlockType.data, patternBytes(200_000, 6)), /block worker exited/);
    const reader = engine.readFile;
    assert.ok(reader !== null);
    await assert.rejects(async () => {
      for await (const window of reader(Buffer.from(process.execPath), 100)) assert.ok(window);
    }, /block worker exited/);
    const readSmall = engine.readSmallFiles;
    assert.ok(readSmall !== null);
    await assert.rejects(readSmall([{ path: Buffer.from(process.execPath), size: 100 }]), /block worker exited/);
  } finally {
    await engine.close();
  }
});
