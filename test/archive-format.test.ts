import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockCodec, blockKey } from '../src/archive/block-codec.js';
import { Chunker, chunkSizes, gearTable } from '../src/archive/chunker.js';
import { BlockType, maxPlaintext } from '../src/archive/format.js';
import { deriveKeys, newMasterKey, unwrapMasterKey, wrapMasterKey } from '../src/archive/keys.js';
import { openTag, sealTag, storedTagName } from '../src/archive/tags.js';
import { decodeEntry, encodeEntry } from '../src/archive/tree-entry.js';
import { arrayHeader } from '../src/archive/directory.js';
import { pack } from '../src/archive/pack.js';
import { patternBytes } from './support/scratch.js';

const keys = deriveKeys(newMasterKey());
const cheap = { N: 1024, r: 8, p: 1 };

test('the master key unwraps with its passphrase only', async () => {
  const master = newMasterKey();
  const wrapped = await wrapMasterKey(master, 'pass word', cheap);
  assert.ok((await unwrapMasterKey(wrapped, 'pass word')).equals(master));
  await assert.rejects(unwrapMasterKey(wrapped, 'pass wore'), /wrong passphrase/);
  assert.ok(!wrapped.includes(master.subarray(0, 16)));
});

test('whileStretching runs once scrypt has started, before the key is unwrapped; not at all on a malformed record', async () => {
  const master = newMasterKey();
  const wrapped = await wrapMasterKey(master, 'pass word', cheap);
  const seen: string[] = [];
  const unwrapping = unwrapMasterKey(wrapped, 'pass word', () => seen.push('hook')).then((key) => {
    seen.push('unwrapped');
    return key;
  });
  assert.ok((await unwrapping).equals(master));
  assert.deepEqual(seen, ['hook', 'unwrapped']);
  let called = 0;
  await assert.rejects(unwrapMasterKey(wrapped, 'pass wore', () => { called += 1; }), /wrong passphrase/);
  assert.equal(called, 1);
  await assert.rejects(unwrapMasterKey(Buffer.from([0xc0]), 'pass word', () => { called += 1; }), /key record/);
  assert.equal(called, 1, 'a record that cannot be read never starts the stretch');
  await assert.rejects(unwrapMasterKey(wrapped, 'pass word', () => { throw new Error('hook failed'); }), /hook failed/);
});

test('derived keys differ from each other and from another master key', () => {
  const other = deriveKeys(newMasterKey());
  const all = [keys.block, keys.blockHash, keys.tag, keys.tagName, other.block, other.blockHash].map((k) => k.toString('hex'));
  assert.equal(new Set(all).size, all.length);
});

test('a block round-trips; a flipped bit, another key or another type is corrupt', () => {
  const codec = new BlockCodec(keys.block);
  for (const plain of [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(100_000, 7), patternBytes(70_000)]) {
    const key = blockKey(keys.blockHash, BlockType.data, plain);
    const sealed = codec.seal(key, BlockType.data, plain);
    assert.ok(codec.open(key, BlockType.data, sealed).equals(plain));
    const flipped = Buffer.from(sealed);
    flipped[sealed.length - 20] = (flipped[sealed.length - 20] as number) ^ 1;
    assert.throws(() => codec.open(key, BlockType.data, flipped), { code: 'corrupt' });
    const otherKey = blockKey(keys.blockHash, BlockType.data, Buffer.concat([plain, Buffer.from('!')]));
    assert.throws(() => codec.open(otherKey, BlockType.data, sealed), /tampered/);
    assert.throws(() => codec.open(key, BlockType.directory, sealed), /type 1, expected 3/);
  }
  const compressible = Buffer.alloc(1_000_000, 1);
  assert.ok(codec.seal('k', BlockType.data, compressible).length < 10_000, 'zstd when it pays');
  const random = patternBytes(100_000, 9);
  assert.ok(codec.seal('k', BlockType.data, random).length <= random.length + 31, 'stored when it does not');
});

test('block keys are keyed: the same plaintext under another archive key has another key', () => {
  const other = deriveKeys(newMasterKey());
  const plain = Buffer.from('same content');
  assert.notEqual(blockKey(keys.blockHash, BlockType.data, plain), blockKey(other.blockHash, BlockType.data, plain));
  assert.notEqual(blockKey(keys.blockHash, BlockType.data, plain), blockKey(keys.blockHash, BlockType.directory, plain));
});

test('tags: the name is hashed, the value sealed to its stored name', () => {
  const stored = storedTagName(keys, 'home');
  assert.match(stored, /^c-[0-9a-f]{64}$/);
  const sealed = sealTag(keys, stored, { name: 'home', head: null, time: 5 });
  assert.ok(!sealed.includes(Buffer.from('home')));
  assert.deepEqual(openTag(keys, stored, sealed), { name: 'home', head: null, time: 5 });
  assert.throws(() => openTag(keys, storedTagName(keys, 'other'), sealed), /tampered/);
});

test('chunking: sizes within bounds, deterministic, and an insertion changes only nearby chunks', () => {
  const sizes = chunkSizes(maxPlaintext(16 * 1024 * 1024));
  assert.deepEqual(sizes, { min: 512 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024 });
  const small = chunkSizes(maxPlaintext(65536));
  assert.ok(small.max <= maxPlaintext(65536) && small.min < small.avg);
  const gear = gearTable(keys.chunker);
  const data = patternBytes(24 * 1024 * 1024, 3);
  const cut = (buf: Buffer): Buffer[] => {
    const c = new Chunker(gear, sizes);
    const out: Buffer[] = [];
    for (let i = 0; i < buf.length; i += 3_000_001) out.push(...c.push(buf.subarray(i, i + 3_000_001)));
    return [...out, ...c.end()];
  };
  const a = cut(data);
  assert.equal(Buffer.concat(a).length, data.length);
  for (const chunk of a.slice(0, -1)) assert.ok(chunk.length >= sizes.min && chunk.length <= sizes.max);
  const whole = new Chunker(gear, sizes).split(data, true).chunks;
  assert.deepEqual(whole.map((c) => c.length), a.map((c) => c.length), 'feeding in pieces cuts the same');
  const at = 12 * 1024 * 1024 + 17;
  const b = cut(Buffer.concat([data.subarray(0, at), Buffer.from('inserted'), data.subarray(at)]));
  const before = new Set(a.map((c) => c.toString('base64')));
  const changed = b.filter((c) => !before.has(c.toString('base64')));
  assert.ok(changed.length <= 2, `${changed.length} chunks changed`);
});

test('directory entries encode deterministically and refuse unsafe names', () => {
  const entry = { name: Buffer.from([0x61, 0xff]), type: 'file' as const, mode: 0o644, uid: 1, gid: 2, mtime: [3, 4] as [number, number], size: 0, content: null };
  assert.deepEqual(decodeEntry(encodeEntry(entry), 'x'), entry);
  for (const bad of ['..', '.', 'a/b', 'a\0b', '']) {
    assert.throws(() => decodeEntry({ ...encodeEntry(entry), n: Buffer.from(bad) }, 'x'), /refusing entry name/);
  }
});

test('a directory block is the MessagePack array of its encoded entries: arrayHeader and the entries packed one by one give pack()\'s own bytes', () => {
  const entry = (i: number): Record<string, unknown> => encodeEntry({
    name: Buffer.from(`file-${i}`), type: 'file', mode: 0o644, uid: 1000, gid: 1000, user: 'me', group: 'us',
    mtime: [1_700_000_000 + i, i], size: i * 7, content: i % 3 === 0 ? null : { level: 0, key: (i % 256).toString(16).padStart(2, '0').repeat(32) },
  });
  for (const n of [0, 1, 15, 16, 17, 255, 256, 65_535, 65_536, 70_000]) {
    const items = Array.from({ length: n }, (_, i) => entry(i));
    const byHand = Buffer.concat([arrayHeader(n), ...items.map((item) => pack(item))]);
    assert.ok(byHand.equals(pack(items)), `${n} entries`);
  }
});
