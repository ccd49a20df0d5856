/**
 * native/gear-chunk: FastCDC's cut point in C. It is built by `npm ci` (an
 * optional module, like cairn-aes-gcm), the chunker uses it, and it cuts
 * exactly where the JavaScript loop cuts (the archive's blocks, and so its
 * deduplication, depend on it); arguments it cannot use it refuses with -1,
 * and the chunker then cuts in JavaScript.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Chunker, chunkSizes, gearTable, nativeCut, type ChunkSizes } from '../src/archive/chunker.js';
import { maxPlaintext } from '../src/archive/format.js';

function lengths(chunks: Buffer[]): number[] {
  return chunks.map((c) => c.length);
}

/** Text-like bytes: lines from a small vocabulary, which repeat as logs and sources do. */
function textLike(size: number, seed: number): Buffer {
  const words = ['error', 'GET', '/index.html', '200', 'user=', 'ok', 'timeout', '\n', ' ', 'id=', '0x', 'cairn'];
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size;) {
    x = (x * 1103515245 + 12345) >>> 0;
    i += out.write(words[x % words.length] as string, i);
  }
  return out;
}

test('cairn-gear-chunk is built, and the chunker cuts with it', { skip: process.platform !== 'linux' }, () => {
  assert.equal(typeof nativeCut, 'function');
});

test('native cuts are exactly the JavaScript loop\'s, for random, text-like and zero bytes, whole and streamed, at every chunk size', { skip: nativeCut === null }, () => {
  const sizesList: ChunkSizes[] = [chunkSizes(maxPlaintext(16 * 1024 * 1024)), chunkSizes(maxPlaintext(65536)), chunkSizes(maxPlaintext(8192))];
  for (const [n, sizes] of sizesList.entries()) {
    const gear = gearTable(createHash('sha256').update(`seed ${n}`).digest());
    const inputs = [randomBytes(3 * sizes.max + 12_345), textLike(5 * sizes.avg + 777, n), Buffer.alloc(2 * sizes.max + 1), randomBytes(sizes.min), randomBytes(sizes.min + 1), randomBytes(sizes.avg + 31)];
    for (const [i, data] of inputs.entries()) {
      const byNative = new Chunker(gear, sizes).split(data, true).chunks;
      const byLoop = new Chunker(gear, sizes, null).split(data, true).chunks;
      assert.deepEqual(lengths(byNative), lengths(byLoop), `sizes ${n}, input ${i}`);
      assert.ok(byNative.length > 0);
      // Streamed in uneven pieces: the same chunks again.
      const streamed = new Chunker(gear, sizes);
      const pieces: Buffer[] = [];
      for (let at = 0; at < data.length; at += 100_003) pieces.push(...streamed.push(data.subarray(at, at + 100_003)));
      pieces.push(...streamed.end());
      assert.deepEqual(lengths(pieces), lengths(byLoop), `sizes ${n}, input ${i}, streamed`);
    }
  }
});

test('arguments the native cut cannot use are refused with -1 (the chunker then cuts in JavaScript)', { skip: nativeCut === null }, () => {
  const cut = nativeCut as NonNullable<typeof nativeCut>;
  const gear = gearTable(randomBytes(32));
  const buf = randomBytes(4096);
  assert.equal(cut(buf, 0, 8192, gear, 1024, 2048, 4096, 0xffc00000, 0xfff00000), -1, 'end past the buffer');
  assert.equal(cut(buf, 100, 50, gear, 1024, 2048, 4096, 0xffc00000, 0xfff00000), -1, 'start after end');
  assert.equal(cut(buf, 0, 4096, new Int32Array(10), 1024, 2048, 4096, 0xffc00000, 0xfff00000), -1, 'a table of the wrong size');
  assert.equal(cut(buf, 0, 4096, gear, 16, 2048, 4096, 0xffc00000, 0xfff00000), -1, 'a minimum under the 32 bytes the hash warms up on');
  assert.equal(cut(buf, 0, 1000, gear, 1024, 2048, 4096, 0xffc00000, 0xfff00000), 1000, 'what is left under the minimum is one chunk');
});
