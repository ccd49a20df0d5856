import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, test } from 'node:test';
import { Archive } from '../src/archive/archive.js';
import { storedTagName } from '../src/archive/tags.js';
import { catStream } from '../src/cli/cairn/cat-stream.js';
import { unlockArchive } from '../src/cli/cairn/context.js';
import { logCommand } from '../src/cli/cairn/log.js';
import { snapshotStreamCommand } from '../src/cli/cairn/snapshot-stream.js';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { contentOf, makeContext } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-stream-');
after(() => scratch.remove());

function pieces(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

test('snapshot-stream and cat-stream round-trip a stream through a splitlog archive, deduplicating a second send', async () => {
  const ctx = await makeContext(scratch.dir, `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite`);
  const data = Buffer.concat([contentOf(5 * 1024 * 1024 + 7, 41), Buffer.alloc(3 * 1024 * 1024), contentOf(999, 42)]);
  const first = await snapshotStreamCommand(ctx, 'zfs', 'pool/home@monday', pieces(data, 65536), { quiet: true });
  assert.equal(first.record.kind, 'stream');
  assert.equal(first.record.size, data.length);
  const again = await snapshotStreamCommand(ctx, 'zfs', 'pool/home@monday', pieces(data, 100_000), { quiet: true });
  assert.equal(again.record.stats.blocksUploaded, 0, 'the same stream again stores nothing new but its record');
  const hash = createHash('sha256');
  let size = 0;
  const out = new Writable({ write(chunk: Buffer, _e, cb) { hash.update(chunk); size += chunk.length; cb(); } });
  assert.equal(await catStream(ctx, 'zfs@~1', out), data.length);
  assert.equal(size, data.length);
  assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.equal((await logCommand(ctx, 'zfs')).length, 2);
  await assert.rejects(catStream(ctx, 'nosuch', out), /no tag "nosuch"/);
});

test('a snapshot refuses a tag whose lock another client holds, and moves nothing', async () => {
  const dir = path.join(scratch.dir, 'locked');
  const ctx = await makeContext(scratch.dir.concat('/locked'), `backend-fs fs ${dir}/archive`);
  const archive: Archive = await unlockArchive(ctx);
  try {
    assert.equal(await archive.backend.lockTag(storedTagName(archive.keys, 'home'), 'someone else', 60), true);
    await assert.rejects(snapshotCommand(ctx, 'home', [path.join(scratch.dir, 'logs')], { quiet: true, workers: 0 }), /tag "home" is locked by another client/);
    assert.equal(await archive.getTag('home'), null);
  } finally {
    await archive.close();
  }
});
