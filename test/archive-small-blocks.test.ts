import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { Archive } from '../src/archive/archive.js';
import { readDirectory } from '../src/archive/directory.js';
import { Extractor } from '../src/archive/extract.js';
import { snapshotTree } from '../src/archive/snapshot.js';
import { resolveEntry } from '../src/archive/snapshot-ref.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { contentOf, walkTree, assertSameTree } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-small-blocks-');
after(() => scratch.remove());

test('on a backend with 64 KiB blocks, large directories and key lists split into index blocks and round-trip', async () => {
  const src = path.join(scratch.dir, 'src');
  mkdirSync(path.join(src, 'many'), { recursive: true });
  for (let i = 0; i < 1200; i += 1) writeFileSync(path.join(src, 'many', `file-with-a-longish-name-${String(i).padStart(5, '0')}`), `#${i}`);
  // About 2,600 chunks (8-64 KiB, 16 KiB on average), well over the 1,361 entries one index block holds.
  // 24 MiB gave about 1,290 (how many depends on the archive's random chunker seed), so one index block
  // sufficed whenever no key ended in a zero byte (about 1 run in 150) and the level-2 check below failed.
  writeFileSync(path.join(src, 'large'), contentOf(48 * 1024 * 1024, 61));
  const store = new MemoryStore(65536);
  const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(store)), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  try {
    const result = await snapshotTree(archive, [src], { tag: 't', workers: 1 });
    const root = await resolveEntry(archive, result.record, [], 't');
    const entries = await readDirectory(archive, root.content as { level: number; key: string });
    const many = entries.find((e) => e.name.toString() === 'many');
    const large = entries.find((e) => e.name.toString() === 'large');
    assert.ok((many?.content?.level ?? 0) >= 1, 'the big directory is split under a directory index');
    assert.ok((large?.content?.level ?? 0) >= 2, `the chunk list is split under index blocks (level ${large?.content?.level})`);
    const dest = path.join(scratch.dir, 'out');
    await new Extractor(archive).extract(root, dest);
    assertSameTree(walkTree(dest), walkTree(src));
  } finally {
    await archive.close();
  }
});
