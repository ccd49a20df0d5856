/**
 * native/aes-gcm: AES-256-GCM written into (and opened into) a buffer of ours, and block keys
 * (HMAC-SHA256) without an Hmac object per block. It is built by `npm ci`
 * (an optional module, like cairn-malloc-trim), it seals to exactly the
 * bytes Node's cipher gives and names blocks exactly as Node's Hmac does,
 * and it refuses bad arguments with an error instead of writing out of
 * bounds.
 */
import assert from 'node:assert/strict';
import { createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { BlockCodec, blockKey, blockKeyByNode, blockKeysOf, namesNatively, opensNatively, sealBlock, sealsNatively, type NativeGcm, type NativeOpen } from '../src/archive/block-codec.js';
import { BlockType } from '../src/archive/format.js';
import { deriveKeys, newMasterKey } from '../src/archive/keys.js';

const native = (): NativeGcm => createRequire(import.meta.url)('cairn-aes-gcm') as NativeGcm;

test('cairn-aes-gcm is built, and blocks are sealed with it', { skip: process.platform !== 'linux' }, () => {
  assert.equal(typeof native().seal, 'function');
  assert.equal(sealsNatively, true);
});

test('a block sealed natively is byte for byte the block Node\'s cipher seals, for every length around the AES block', () => {
  const encryptionKey = randomBytes(32);
  for (const length of [0, 1, 2, 14, 15, 16, 17, 31, 32, 33, 4096, 65_539, 1024 * 1024 + 5]) {
    const payload = randomBytes(length);
    const nonce = randomBytes(12);
    const key = randomBytes(32).toString('hex');
    const head = Buffer.of(1, BlockType.data);
    const byNode = sealBlock(encryptionKey, nonce, key, head, payload, null);
    const byNative = sealBlock(encryptionKey, nonce, key, head, payload, native());
    assert.ok(byNative.equals(byNode), `length ${length}`);
    assert.equal(byNative.byteOffset, 0, 'a buffer of its own (transferred to the main thread without a copy)');
    assert.equal(byNative.buffer.byteLength, byNative.length);
    // And it opens with Node's decipher, as every block is read.
    const decipher = createDecipheriv('aes-256-gcm', encryptionKey, nonce);
    decipher.setAAD(Buffer.from(key, 'latin1'));
    decipher.setAuthTag(byNative.subarray(byNative.length - 16));
    const plain = Buffer.concat([decipher.update(byNative.subarray(13, byNative.length - 16)), decipher.final()]);
    assert.ok(plain.equals(Buffer.concat([head, payload])));
  }
});

test('the codec\'s sealed blocks open, and a flipped bit is refused, with the native sealer in use', () => {
  const keys = deriveKeys(newMasterKey());
  const codec = new BlockCodec(keys.block);
  const plain = randomBytes(300_000);
  const key = blockKey(keys.blockHash, BlockType.data, plain);
  const sealed = codec.seal(key, BlockType.data, plain);
  assert.ok(codec.open(key, BlockType.data, sealed).equals(plain));
  const flipped = Buffer.from(sealed);
  flipped[100] = (flipped[100] as number) ^ 1;
  assert.throws(() => codec.open(key, BlockType.data, flipped), { code: 'corrupt' });
});

test('bad arguments are refused with an error, never written past the output', () => {
  const { seal } = native();
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const aad = Buffer.from('aad');
  const head = Buffer.of(0, 1);
  const payload = randomBytes(100);
  const guard = Buffer.alloc(2 + 100 + 16 + 8, 0xaa);
  assert.throws(() => seal(key, nonce, aad, head, payload, guard.subarray(0, 2 + 100 + 15)), RangeError, 'no room for the tag');
  assert.ok(guard.every((b) => b === 0xaa), 'nothing written');
  assert.throws(() => seal(key.subarray(0, 16), nonce, aad, head, payload, guard), RangeError);
  assert.throws(() => seal(key, nonce.subarray(0, 8), aad, head, payload, guard), RangeError);
  assert.throws(() => (seal as unknown as (...args: unknown[]) => void)(key, nonce, aad, head, 'text', guard), TypeError);
  assert.throws(() => (seal as unknown as (...args: unknown[]) => void)(key, nonce, aad, head), /6 arguments/);
});

const nativeOpen = (): NativeOpen => (createRequire(import.meta.url)('cairn-aes-gcm') as { open: NativeOpen }).open;

test('blocks are opened by cairn-aes-gcm\'s open', { skip: process.platform !== 'linux' }, () => {
  assert.equal(typeof nativeOpen(), 'function');
  assert.equal(opensNatively, true);
});

test('a codec opening natively gives the bytes Node\'s decipher gives, and both refuse a flipped bit, a wrong key name or a wrong type alike', () => {
  const keys = deriveKeys(newMasterKey());
  const native = new BlockCodec(keys.block, 'zstd', 3, nativeOpen());
  const byNode = new BlockCodec(keys.block, 'zstd', 3, null);
  for (const length of [0, 1, 15, 16, 17, 4096, 70_000, 1024 * 1024 + 5]) {
    for (const plain of [randomBytes(length), Buffer.alloc(length, 'compressible text ')]) {
      const key = blockKey(keys.blockHash, BlockType.data, plain);
      const sealed = native.seal(key, BlockType.data, plain);
      for (const codec of [native, byNode]) {
        assert.ok(codec.open(key, BlockType.data, sealed).equals(plain), `open, ${length} bytes`);
        assert.ok(codec.openTransient(key, BlockType.data, sealed).equals(plain), `openTransient, ${length} bytes`);
        const flipped = Buffer.from(sealed);
        flipped[flipped.length - 20] = (flipped[flipped.length - 20] as number) ^ 1;
        assert.throws(() => codec.open(key, BlockType.data, flipped), { code: 'corrupt' });
        assert.throws(() => codec.openTransient(key, BlockType.data, flipped), { code: 'corrupt' });
        const otherKey = blockKey(keys.blockHash, BlockType.data, Buffer.concat([plain, Buffer.of(0)]));
        assert.throws(() => codec.open(otherKey, BlockType.data, sealed), /authentication failed/);
        assert.throws(() => codec.open(key, BlockType.directory, sealed), /is of type/);
      }
    }
  }
  // A stored block's payload from openTransient is the codec's buffer: valid until the next call, then reused.
  const a = randomBytes(5000);
  const b = randomBytes(5000);
  const keyA = blockKey(keys.blockHash, BlockType.data, a);
  const keyB = blockKey(keys.blockHash, BlockType.data, b);
  const first = native.openTransient(keyA, BlockType.data, native.seal(keyA, BlockType.data, a));
  assert.ok(first.equals(a));
  native.openTransient(keyB, BlockType.data, native.seal(keyB, BlockType.data, b));
  assert.ok(first.equals(b), 'the same buffer serves the next call');
  // open gives a buffer of the caller's own.
  const owned = native.open(keyA, BlockType.data, native.seal(keyA, BlockType.data, a));
  native.openTransient(keyB, BlockType.data, native.seal(keyB, BlockType.data, b));
  assert.ok(owned.equals(a));
});

test('seal and open keep a context per thread with its key: blocks under two keys in turn, and a refused open between good ones, give Node\'s bytes', () => {
  const gcm = native();
  const open = nativeOpen();
  const encryptionKeys = [randomBytes(32), randomBytes(32)];
  const head = Buffer.of(0, BlockType.data);
  for (let i = 0; i < 12; i += 1) {
    // Two keys in turn, and now and then the same key twice: each block is sealed under its own key, with its own nonce.
    const encryptionKey = encryptionKeys[(i >> 1) % 2 === 0 ? i % 2 : 0] as Buffer;
    const payload = randomBytes(100 + i * 997);
    const nonce = randomBytes(12);
    const key = randomBytes(32).toString('hex');
    const byNative = sealBlock(encryptionKey, nonce, key, head, payload, gcm);
    assert.ok(byNative.equals(sealBlock(encryptionKey, nonce, key, head, payload, null)), `block ${i}`);
    const ciphertext = byNative.subarray(13, byNative.length - 16);
    const tag = byNative.subarray(byNative.length - 16);
    const out = Buffer.alloc(ciphertext.length);
    // The other key first (refused), then the right one: the refusal leaves nothing behind.
    const other = encryptionKeys[0] === encryptionKey ? encryptionKeys[1] as Buffer : encryptionKeys[0] as Buffer;
    assert.equal(open(other, nonce, Buffer.from(key, 'latin1'), ciphertext, tag, out), false, `block ${i} under the other key`);
    assert.equal(open(encryptionKey, nonce, Buffer.from(key, 'latin1'), ciphertext, tag, out), true, `block ${i}`);
    assert.ok(out.equals(Buffer.concat([head, payload])), `block ${i} opens to its plaintext`);
  }
});

test('open refuses bad arguments with an error, never writes past the output, and says false for a wrong tag', () => {
  const open = nativeOpen() as unknown as (...args: unknown[]) => boolean;
  const { seal } = native();
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const aad = Buffer.from('aad');
  const payload = randomBytes(100);
  // Sealed with an empty head (the associated data's length once counted as output there): the payload alone.
  const sealed = Buffer.alloc(100 + 16);
  seal(key, nonce, aad, Buffer.alloc(0), payload, sealed);
  assert.ok(sealBlock(key, nonce, 'aad', Buffer.alloc(0), payload, null).subarray(13).equals(sealed), 'as Node seals it');
  const body = sealed.subarray(0, 100);
  const tag = sealed.subarray(100);
  const out = Buffer.alloc(100);
  assert.equal(open(key, nonce, aad, body, tag, out), true);
  assert.ok(out.equals(payload));
  assert.equal(open(key, nonce, Buffer.from('other'), body, tag, Buffer.alloc(100)), false);
  assert.equal(open(randomBytes(32), nonce, aad, body, tag, Buffer.alloc(100)), false);
  const guard = Buffer.alloc(108, 0xaa);
  assert.throws(() => open(key, nonce, aad, body, tag, guard.subarray(0, 99)), RangeError, 'no room for the plaintext');
  assert.ok(guard.every((b) => b === 0xaa), 'nothing written');
  assert.throws(() => open(key.subarray(0, 16), nonce, aad, body, tag, out), RangeError);
  assert.throws(() => open(key, nonce, aad, body, tag.subarray(0, 12), out), RangeError);
  assert.throws(() => open(key, nonce, aad, 'text', tag, out), TypeError);
  assert.throws(() => open(key, nonce, aad, body, tag), /6 arguments/);
});

test('openTransient gives the bytes open gives, in a buffer it uses again, and refuses what open refuses', () => {
  const keys = deriveKeys(newMasterKey());
  const codec = new BlockCodec(keys.block);
  for (const plain of [Buffer.alloc(100_000, 'compressible text '), randomBytes(70_000), Buffer.alloc(10, 'a'), Buffer.alloc(3 * 1024 * 1024, 'z')]) {
    const key = blockKey(keys.blockHash, BlockType.data, plain);
    const sealed = codec.seal(key, BlockType.data, plain);
    assert.ok(codec.openTransient(key, BlockType.data, sealed).equals(plain));
    assert.ok(codec.open(key, BlockType.data, sealed).equals(plain));
  }
  const a = Buffer.alloc(50_000, 'first ');
  const b = Buffer.alloc(40_000, 'second ');
  const keyA = blockKey(keys.blockHash, BlockType.data, a);
  const keyB = blockKey(keys.blockHash, BlockType.data, b);
  const openedA = codec.openTransient(keyA, BlockType.data, codec.seal(keyA, BlockType.data, a));
  const openedB = codec.openTransient(keyB, BlockType.data, codec.seal(keyB, BlockType.data, b));
  assert.equal(openedA.buffer, openedB.buffer, 'compressed blocks are decompressed into one buffer, used again');
  const sealed = codec.seal(keyA, BlockType.data, a);
  const flipped = Buffer.from(sealed);
  flipped[20] = (flipped[20] as number) ^ 1;
  assert.throws(() => codec.openTransient(keyA, BlockType.data, flipped), /authentication failed/);
  assert.throws(() => codec.openTransient(keyA, BlockType.chunkIndex, sealed), /is of type 1, expected 2/);
});

test('a block sealed with the right key whose payload is not a zstd frame is corrupt, through open and openTransient alike', () => {
  const keys = deriveKeys(newMasterKey());
  const codec = new BlockCodec(keys.block);
  const key = randomBytes(32).toString('hex');
  // Marked compressed (method 1), but the payload is not zstd: only a writer with the key can make this.
  const sealed = sealBlock(keys.block, randomBytes(12), key, Buffer.of(1, BlockType.data), Buffer.from('not a zstd frame at all'));
  assert.throws(() => codec.open(key, BlockType.data, sealed), (err: unknown) => err instanceof Error && (err as { code?: string }).code === 'corrupt' && /does not decompress/.test(err.message));
  assert.throws(() => codec.openTransient(key, BlockType.data, sealed), (err: unknown) => err instanceof Error && (err as { code?: string }).code === 'corrupt' && /does not decompress/.test(err.message));
});

type NativeBlockKey = (hashKey: Uint8Array, type: number, plaintext: Uint8Array) => string;
const nativeBlockKey = (): NativeBlockKey => (createRequire(import.meta.url)('cairn-aes-gcm') as { blockKey: NativeBlockKey }).blockKey;

test('block keys are computed by cairn-aes-gcm\'s blockKey', { skip: process.platform !== 'linux' }, () => {
  assert.equal(typeof nativeBlockKey(), 'function');
  assert.equal(namesNatively, true);
});

test('a block key computed natively is the HMAC-SHA256 Node computes, for every length around SHA-256\'s block and keys up to 64 bytes', () => {
  const blockKeyOf = nativeBlockKey();
  for (const keyLength of [0, 1, 32, 63, 64]) {
    const hashKey = randomBytes(keyLength);
    for (const length of [0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 4096, 1024 * 1024 + 3]) {
      const plaintext = randomBytes(length);
      for (const type of [BlockType.data, BlockType.directory, 0, 255]) {
        const expected = createHmac('sha256', hashKey).update(Buffer.of(type)).update(plaintext).digest('hex');
        assert.equal(blockKeyOf(hashKey, type, plaintext), expected, `key ${keyLength} bytes, ${length} bytes of type ${type}`);
        assert.equal(blockKeyByNode(hashKey, type as BlockType, plaintext), expected);
      }
    }
  }
  // A key longer than SHA-256's block (never an archive's): blockKey gives Node's answer, which hashes it first.
  const longKey = randomBytes(100);
  assert.equal(blockKey(longKey, BlockType.data, Buffer.from('x')), createHmac('sha256', longKey).update(Buffer.of(BlockType.data)).update('x').digest('hex'));
  // A view into a larger buffer: only its own bytes count.
  const hashKey = randomBytes(32);
  const whole = randomBytes(1000);
  const view = whole.subarray(100, 300);
  assert.equal(blockKey(hashKey, BlockType.data, view), blockKeyByNode(hashKey, BlockType.data, Buffer.from(view)));
});

test('block keys computed natively in worker threads (a digest context each) are the main thread\'s', async () => {
  const hashKey = randomBytes(32);
  const inputs = Array.from({ length: 4 }, (_, i) => randomBytes(1000 + i * 50_000));
  const module = new URL('../src/archive/block-codec.js', import.meta.url).href;
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(${JSON.stringify(module)}).then(({ blockKey }) => {
      parentPort.postMessage(workerData.inputs.map((input) => blockKey(Buffer.from(workerData.hashKey), 1, input)));
    });
  `;
  const keysFrom = (): Promise<string[]> => new Promise((resolve, reject) => {
    const worker = new Worker(script, { eval: true, workerData: { hashKey, inputs } });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const results = await Promise.all([keysFrom(), keysFrom(), keysFrom()]);
  const expected = inputs.map((input) => blockKeyByNode(hashKey, BlockType.data, input));
  for (const keys of results) assert.deepEqual(keys, expected);
});

test('the keys of a window\'s consecutive chunks, named in one call on two threads from 1 MiB on, are each chunk\'s blockKey', () => {
  const hashKey = randomBytes(32);
  const window = randomBytes(5 * 1024 * 1024);
  const cutAt = (lengths: number[]): Buffer[] => {
    let at = 7;
    return lengths.map((length) => {
      const chunk = window.subarray(at, at + length);
      at += length;
      return chunk;
    });
  };
  const expected = (chunks: Uint8Array[]): string[] => chunks.map((chunk) => blockKeyByNode(hashKey, BlockType.data, chunk));
  // Under 1 MiB (one thread), over it (two, split at half the bytes), one chunk bigger than the rest, empty chunks.
  for (const lengths of [[1000, 2000, 3000], [300_000, 200_000, 700_000, 100_000, 1_000_000, 5], [3_900_000, 10, 20], [0, 1_500_000, 0, 1]]) {
    const chunks = cutAt(lengths);
    assert.deepEqual(blockKeysOf(hashKey, BlockType.data, chunks), expected(chunks), lengths.join(', '));
  }
  // Not one after the other (copies, or gaps): each named on its own, with the same result.
  const apart = [window.subarray(0, 600_000), window.subarray(600_001, 1_800_000), Buffer.from(window.subarray(2_000_000, 2_100_000))];
  assert.deepEqual(blockKeysOf(hashKey, BlockType.data, apart), expected(apart));
  assert.deepEqual(blockKeysOf(hashKey, BlockType.data, []), []);
  assert.deepEqual(blockKeysOf(hashKey, BlockType.directory, [window.subarray(0, 10)]), [blockKeyByNode(hashKey, BlockType.directory, window.subarray(0, 10))]);
});

test('blockKeys refuses bad arguments with an error, and lengths that run past its data', () => {
  type NativeBlockKeys = (...args: unknown[]) => string[];
  const blockKeysOfNative = (createRequire(import.meta.url)('cairn-aes-gcm') as { blockKeys: NativeBlockKeys }).blockKeys;
  const data = randomBytes(2 * 1024 * 1024);
  assert.throws(() => blockKeysOfNative(randomBytes(32), 1, data, Uint32Array.of(1024 * 1024, 1024 * 1024 + 1)), RangeError);
  assert.throws(() => blockKeysOfNative(randomBytes(65), 1, data, Uint32Array.of(1)), RangeError);
  assert.throws(() => blockKeysOfNative(randomBytes(32), 256, data, Uint32Array.of(1)), RangeError);
  assert.throws(() => blockKeysOfNative(randomBytes(32), 1, data, [1, 2]), TypeError);
  assert.throws(() => blockKeysOfNative(randomBytes(32), 1, data, Int32Array.of(1)), TypeError);
  assert.throws(() => blockKeysOfNative(randomBytes(32), 1, 'data', Uint32Array.of(1)), TypeError);
  assert.deepEqual(blockKeysOfNative(randomBytes(32), 1, data, new Uint32Array(0)), []);
});

test('blockKey refuses bad arguments with an error', () => {
  const blockKeyOf = nativeBlockKey() as unknown as (...args: unknown[]) => string;
  const data = Buffer.from('data');
  assert.throws(() => blockKeyOf(randomBytes(65), 1, data), RangeError);
  assert.throws(() => blockKeyOf(randomBytes(32), 256, data), RangeError);
  assert.throws(() => blockKeyOf(randomBytes(32), 1, 'data'), TypeError);
  assert.throws(() => blockKeyOf('key', 1, data), TypeError);
  assert.throws(() => blockKeyOf(randomBytes(32), 1), TypeError);
  assert.throws(() => blockKeyOf(randomBytes(32), 1, new Uint16Array(4)), TypeError);
});

test('a process where only worker threads load cairn-aes-gcm outlives them: a worker seals and names blocks, ends, and another does the same (it crashed when the first ended)', { skip: process.platform !== 'linux' }, () => {
  const module = new URL('../src/archive/block-codec.js', import.meta.url).href;
  // The main thread of this child never imports block-codec.js: each worker is the only one to have loaded the module.
  const script = `
    const { Worker } = require('node:worker_threads');
    const body = \`
      const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(module)}).then(({ BlockCodec, blockKey, sealsNatively }) => {
        const key = Buffer.alloc(32, 7);
        const sealed = new BlockCodec(key).seal(blockKey(key, 1, Buffer.from('data')), 1, Buffer.from('data'));
        parentPort.postMessage(sealsNatively && sealed.length > 0);
      });
    \`;
    (async () => {
      for (let i = 0; i < 3; i += 1) {
        const worker = new Worker(body, { eval: true });
        const sealed = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
        if (sealed !== true) throw new Error('not sealed natively');
        await new Promise((resolve) => worker.once('exit', resolve));
      }
      console.log('three workers ended');
    })();
  `;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(child.signal, null, `the child ended by ${child.signal}: ${child.stderr}`);
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /three workers ended/);
});

