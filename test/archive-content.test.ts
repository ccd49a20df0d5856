import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Archive } from '../src/archive/archive.js';
import { makeEngine } from '../src/archive/block-engine.js';
import { BlockWriter } from '../src/archive/block-writer.js';
import { indexChunks, openDataBlock, readContent, readSealedContent } from '../src/archive/content.js';
import { BlockType } from '../src/archive/format.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { contentOf } from './cairn-fixtures.js';

/** An archive in memory, and a writer that stores blocks in it on this thread. */
async function memoryArchive(): Promise<{ archive: Archive; writer: BlockWriter }> {
  const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(new MemoryStore(1024 * 1024))), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  const engine = makeEngine({ hashKey: archive.keys.blockHash, encryptionKey: archive.keys.block, compression: 'zstd', level: 3, workers: 0 });
  return { archive, writer: new BlockWriter(archive.backend, engine) };
}

async function collect(archive: Archive, ref: Parameters<typeof readSealedContent>[1], transient: boolean): Promise<Buffer> {
  const parts: Buffer[] = [];
  // A transient block is valid until the next open: copied at once, as extract writes it at once.
  for await (const sealed of readSealedContent(archive, ref)) parts.push(Buffer.from(openDataBlock(archive, sealed, transient)));
  return Buffer.concat(parts);
}

test('content read sealed and opened (into its own buffers or the codec\'s) is the content written, block by block', async () => {
  const { archive, writer } = await memoryArchive();
  const pieces = [contentOf(300_000, 1), contentOf(5, 2), contentOf(700_000, 3)];
  const chunks = await Promise.all(pieces.map(async (p) => ({ key: await writer.add(BlockType.data, p), size: p.length })));
  const ref = await indexChunks(writer, chunks, 1024 * 1024);
  await writer.flush();
  const whole = Buffer.concat(pieces);
  assert.ok((await collect(archive, ref, false)).equals(whole));
  assert.ok((await collect(archive, ref, true)).equals(whole));
  const viaReadContent: Buffer[] = [];
  for await (const block of readContent(archive, ref)) viaReadContent.push(block);
  assert.ok(Buffer.concat(viaReadContent).equals(whole));
});

test('a block whose size is not what its index says, or that is missing, is corrupt and named, opened either way', async () => {
  const { archive, writer } = await memoryArchive();
  const piece = contentOf(100_000, 4);
  const key = await writer.add(BlockType.data, piece);
  const other = await writer.add(BlockType.data, contentOf(1000, 5));
  // An index that says the first block holds one byte more than it does.
  const wrong = await indexChunks(writer, [{ key, size: piece.length + 1 }, { key: other, size: 1000 }], 1024 * 1024);
  await writer.flush();
  for (const transient of [false, true]) {
    await assert.rejects(collect(archive, wrong, transient), { code: 'corrupt', message: `block ${key} holds ${piece.length} bytes, its index says ${piece.length + 1}` });
  }
  const missing = 'ab'.repeat(32);
  const gone = await indexChunks(writer, [{ key: other, size: 1000 }, { key: missing, size: 10 }], 1024 * 1024);
  await writer.flush();
  for (const transient of [false, true]) {
    await assert.rejects(collect(archive, gone, transient), { code: 'corrupt', message: `block ${missing} is missing from the archive` });
  }
});
