/**
 * A restore writes files of one block on a second thread (RestoreThread)
 * while its main thread writes the others: both ways give the same tree,
 * holes, modes, times and hard links included, and a damaged block is
 * refused on that thread as it is on the main one.
 */
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { Archive } from '../src/archive/archive.js';
import { BlockCodec, blockKey } from '../src/archive/block-codec.js';
import { BlockType } from '../src/archive/format.js';
import { deriveKeys, newMasterKey } from '../src/archive/keys.js';
import { RestoreThread, type RestoreJob } from '../src/archive/restore-thread.js';
import { Extractor } from '../src/archive/extract.js';
import { snapshotTree } from '../src/archive/snapshot.js';
import { parseSpec, resolveEntry, resolveSnapshot } from '../src/archive/snapshot-ref.js';
import type { Backend } from '../src/backends/backend.js';
import { isBackendError } from '../src/backends/errors.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { withArchive } from '../src/cli/cairn/context.js';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { assertSameTree, makeContext, testEnvironment, walkTree } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-restore-thread-');
after(() => scratch.remove());

/** Small files of many sizes, files with holes and ending in a hole, odd modes and times, links, one file of several blocks. */
function makeTree(src: string): void {
  for (let d = 0; d < 12; d += 1) {
    const dir = path.join(src, `d${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 40; f += 1) {
      const file = path.join(dir, `f${f}`);
      writeFileSync(file, Buffer.alloc((d * 40 + f) * 37, `${d}/${f} some text\n`));
      chmodSync(file, [0o644, 0o600, 0o755, 0o400][f % 4] as number);
      utimesSync(file, 1_600_000_000 + f, 1_500_000_000 + d * 100 + f);
    }
  }
  writeFileSync(path.join(src, 'empty'), '');
  // One block each (under the 512 KiB smallest chunk): a zero page in the middle, and zeros at the end.
  const holed = Buffer.alloc(300 * 1024, 'x');
  holed.fill(0, 64 * 1024, 192 * 1024);
  writeFileSync(path.join(src, 'holed'), holed);
  const tail = Buffer.alloc(200 * 1024);
  tail.fill('y', 0, 10_000);
  writeFileSync(path.join(src, 'zero-tail'), tail);
  // Several blocks: written by the main thread.
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(path.join(src, 'big'), big);
  linkSync(path.join(src, 'd0', 'f5'), path.join(src, 'link-to-f5'));
  symlinkSync('d1/f1', path.join(src, 'symlink'));
}

test('a restore with the second thread and one without write the same tree, and the thread writes most small files', { timeout: 120_000 }, async () => {
  testEnvironment();
  const dir = path.join(scratch.dir, 'same');
  const src = path.join(dir, 'src');
  makeTree(src);
  const ctx = await makeContext(dir, `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite`);
  await snapshotCommand(ctx, 't', [src], { quiet: true });
  await withArchive(ctx, async (archive) => {
    const root = await resolveEntry(archive, (await resolveSnapshot(archive, parseSpec('t'))).record, [], 't');
    for (const thread of [true, false]) {
      const dest = path.join(dir, `out-${thread}`);
      const extractor = new Extractor(archive, { thread });
      const stats = await extractor.extract(root, dest);
      assertSameTree(walkTree(dest), walkTree(src));
      assert.equal(stats.files, 12 * 40 + 5, 'files and hard links (not the symlink)');
      if (thread) {
        // Every file of one block that found room (the first ones always do), never the empty or big ones.
        assert.ok(extractor.filesInThread >= 64 && extractor.filesInThread <= 12 * 40 + 2, `${extractor.filesInThread} files written by the thread`);
      } else {
        assert.equal(extractor.filesInThread, 0);
      }
      // Holes stay holes (the zero pages were not written), whichever thread wrote the file.
      const holed = statSync(path.join(dest, 'holed'));
      assert.ok(holed.blocks * 512 < 300 * 1024, `holed: ${holed.blocks} blocks`);
      assert.equal(statSync(path.join(dest, 'link-to-f5')).ino, statSync(path.join(dest, 'd0', 'f5')).ino);
    }
  });
});

/** Hands out a damaged copy of one block (a fault that a real disk produces only by chance). */
class DamagingBackend extends OrderedBackend {
  constructor(inner: Backend, private readonly victim: () => string | null) {
    super(inner);
  }

  override async get(key: string): Promise<Uint8Array | null> {
    const data = await super.get(key);
    if (data === null || key !== this.victim()) return data;
    const copy = new Uint8Array(data);
    copy[copy.length - 20] = (copy[copy.length - 20] as number) ^ 1;
    return copy;
  }
}

test('a damaged block of a small file is refused on the second thread as corrupt, and the restore stops (damage simulated by a wrapping backend)', { timeout: 60_000 }, async () => {
  const src = path.join(scratch.dir, 'damaged-src');
  mkdirSync(src, { recursive: true });
  for (let f = 0; f < 30; f += 1) writeFileSync(path.join(src, `f${f}`), `file ${f}\n`.repeat(50));
  let victim: string | null = null;
  const archive = await Archive.initialise(new DamagingBackend(new MemoryBackend(new MemoryStore(1024 * 1024)), () => victim), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  try {
    const first = await snapshotTree(archive, [src], { tag: 't', workers: 1 });
    const root = await resolveEntry(archive, first.record, [], 't');
    const file = await resolveEntry(archive, first.record, ['f7'], 't');
    assert.equal(file.content?.level, 0);
    victim = file.content?.key ?? null;
    const extractor = new Extractor(archive, { thread: true });
    await assert.rejects(extractor.extract(root, path.join(scratch.dir, 'damaged-out')), (err: unknown) => {
      assert.ok(isBackendError(err, 'corrupt'), String(err));
      assert.match((err as Error).message, /authentication failed/);
      return true;
    });
    assert.ok(extractor.filesInThread > 0);
  } finally {
    await archive.close();
  }
});

test('a restore thread that dies (terminated by the test: a crash cannot be caused for real) fails the files it held and every later one, and takes no more: nothing waits for ever', async () => {
  const keys = deriveKeys(newMasterKey());
  const codec = new BlockCodec(keys.block, 'zstd', 3);
  const dir = path.join(scratch.dir, 'dies');
  mkdirSync(dir);
  const job = (name: string): [Omit<RestoreJob, 'id' | 'sealed'>, Uint8Array] => {
    const plaintext = Buffer.from(`the file ${name}\n`.repeat(20));
    const key = blockKey(keys.blockHash, BlockType.data, plaintext);
    return [{ path: path.join(dir, name), key, size: plaintext.length, meta: { mode: 0o644, atime: 1_600_000_000, mtime: 1_600_000_000 } }, codec.seal(key, BlockType.data, plaintext)];
  };
  const terminate = (t: RestoreThread): Promise<number> => (t as unknown as { worker: Worker }).worker.terminate();
  // Dead while idle, between files.
  const idle = new RestoreThread(keys.block);
  try {
    const [first, sealed] = job('first');
    assert.deepEqual(await idle.write(idle.claim(first.size), first, sealed), []);
    assert.equal(statSync(first.path).size, first.size);
    await terminate(idle);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(idle.hasRoom(10), false, 'no more files for a dead thread');
    const [later, laterSealed] = job('later');
    await assert.rejects(idle.write(idle.claim(later.size), later, laterSealed), (err: Error) => isBackendError(err) && /restore thread exited/.test(err.message));
  } finally {
    await idle.close();
  }
  // Dead with files in hand.
  const busy = new RestoreThread(keys.block);
  try {
    const writes = ['a', 'b', 'c'].map((name) => {
      const [j, sealed] = job(name);
      return busy.write(busy.claim(j.size), j, sealed);
    });
    await terminate(busy);
    const settled = await Promise.allSettled(writes);
    // Each was written before the thread died, or failed: none is left waiting.
    for (const s of settled) if (s.status === 'rejected') assert.match((s.reason as Error).message, /restore thread exited/);
  } finally {
    await busy.close();
  }
});
