import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { catFile } from '../src/cli/cairn/cat.js';
import type { CommandContext } from '../src/cli/cairn/context.js';
import { diff } from '../src/cli/cairn/diff.js';
import { extract } from '../src/cli/cairn/extract.js';
import { fork } from '../src/cli/cairn/fork.js';
import { logCommand } from '../src/cli/cairn/log.js';
import { ls } from '../src/cli/cairn/ls.js';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { listTags } from '../src/cli/cairn/tags.js';
import { Writable } from 'node:stream';
import { blockFiles, contentOf, isRoot, makeContext, makeTree, walkTree, assertSameTree } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

function sink(): { stream: Writable; data: () => Buffer } {
  const parts: Buffer[] = [];
  return {
    stream: new Writable({ write(chunk: Buffer, _enc, cb) { parts.push(chunk); cb(); } }),
    data: () => Buffer.concat(parts),
  };
}

describe('cairn round trip', () => {
  const scratch = scratchDir('cairn-roundtrip-');
  const src = path.join(scratch.dir, 'src');
  let ctx: CommandContext;
  let socket: { close(): void };
  let firstId = '';

  before(async () => {
    mkdirSync(src);
    socket = makeTree(src).socket;
    ctx = await makeContext(scratch.dir, `backend-fs fs ${scratch.dir}/archive`, path.join(scratch.dir, 'files.sqlite'));
  });
  after(() => {
    socket.close();
    scratch.remove();
  });

  test('extract gives back every file type with identical content and metadata (tree walk)', async () => {
    const skipped: string[] = [];
    const result = await snapshotCommand(ctx, 'home', [src], { quiet: true, workers: 1 });
    firstId = result.id;
    skipped.push(...result.record.skippedLog.map(([p]) => p));
    assert.deepEqual(skipped, ['/second/sock'], 'only the socket is skipped, with a note');
    const warnings: string[] = [];
    const dest = path.join(scratch.dir, 'out');
    await extract(ctx, 'home', dest, { quiet: true, onWarning: (p, m) => warnings.push(`${p}: ${m}`) });
    assert.deepEqual(warnings, []);
    const before = walkTree(src, { skipSockets: true });
    const afterwards = walkTree(dest);
    assertSameTree(afterwards, before);
    if (isRoot) assert.equal(afterwards.get(`/${Buffer.from('second').toString('hex')}/${Buffer.from('null-dev').toString('hex')}`)?.type, 'char');
  });

  test('sparse files stay sparse and empty files stay empty', () => {
    const restored = statSync(path.join(scratch.dir, 'out', 'sparse.img'));
    assert.equal(restored.size, 24 * 1024 * 1024);
    assert.ok(restored.blocks * 512 < 1024 * 1024, `sparse file uses ${restored.blocks * 512} bytes on disk`);
    assert.equal(statSync(path.join(scratch.dir, 'out', 'empty')).size, 0);
  });

  test('a second snapshot of an unchanged tree uploads only the snapshot record', async () => {
    const blocksBefore = blockFiles(path.join(scratch.dir, 'archive')).length;
    const result = await snapshotCommand(ctx, 'home', [src], { quiet: true, workers: 1 });
    assert.equal(result.record.stats.blocksUploaded, 0);
    assert.equal(result.record.stats.bytesRead, 0, 'the file cache spared reading');
    assert.equal(blockFiles(path.join(scratch.dir, 'archive')).length, blocksBefore + 1);
    assert.equal(result.record.previous, firstId);
  });

  test('without the file cache, an unchanged tree still uploads only the snapshot record', async () => {
    const blocksBefore = blockFiles(path.join(scratch.dir, 'archive')).length;
    const result = await snapshotCommand({ ...ctx, config: { ...ctx.config, fileCache: '' } }, 'home', [src], { quiet: true, workers: 1 });
    assert.equal(result.record.stats.blocksUploaded, 0);
    assert.ok(result.record.stats.bytesRead > 3 * 1024 * 1024);
    assert.equal(blockFiles(path.join(scratch.dir, 'archive')).length, blocksBefore + 1);
  });

  test('an insertion in the middle of a large file uploads only a few blocks', async () => {
    const big = path.join(scratch.dir, 'big');
    mkdirSync(big);
    const data = contentOf(8 * 1024 * 1024, 11);
    writeFileSync(path.join(big, 'data'), data);
    const first = await snapshotCommand(ctx, 'big', [big], { quiet: true, workers: 1 });
    assert.ok(first.record.stats.blocksUploaded >= 5, `${first.record.stats.blocksUploaded} blocks for 8 MiB`);
    const middle = 4 * 1024 * 1024 + 333;
    writeFileSync(path.join(big, 'data'), Buffer.concat([data.subarray(0, middle), Buffer.from('an insertion'), data.subarray(middle)]));
    const second = await snapshotCommand(ctx, 'big', [big], { quiet: true, workers: 1 });
    // The changed chunk (perhaps its neighbour), the chunk index, the directory, and the record (counted after).
    assert.ok(second.record.stats.blocksUploaded <= 5, `${second.record.stats.blocksUploaded} blocks uploaded`);
    assert.ok(second.record.stats.bytesUploaded < 5 * 1024 * 1024, `${second.record.stats.bytesUploaded} bytes uploaded`);
    const out = sink();
    await catFile(ctx, 'big/data', out.stream);
    assert.ok(out.data().subarray(middle, middle + 12).equals(Buffer.from('an insertion')));
    appendFileSync(path.join(big, 'data'), 'x');
  });

  test('tags, log, ls, cat, fork and diff', async () => {
    const tags = await listTags(ctx);
    assert.deepEqual(tags.map((t) => t.name), ['big', 'home']);
    const log = await logCommand(ctx, 'home');
    assert.equal(log.length, 3);
    assert.equal(log.at(-1)?.id, firstId);
    const names = (await ls(ctx, 'home')).map((e) => e.name.toString('utf8'));
    assert.ok(names.includes('dir one') && names.includes('sparse.img'));
    // Hard links are decided in walk order: dir one/deeper/hard2 comes before dir one/with space.bin.
    const deeper = await ls(ctx, `home@${firstId.slice(0, 8)}/dir one/deeper`);
    assert.deepEqual(deeper.map((e) => [e.name.toString(), e.type]), [['big.bin', 'file'], ['hard2', 'file']]);
    const one = await ls(ctx, `home@${firstId.slice(0, 8)}/dir one`);
    assert.deepEqual(one.filter((e) => e.type === 'hardlink').map((e) => [e.name.toString(), e.link?.map(String).join('/')]), [['with space.bin', 'dir one/deeper/hard2']]);
    const out = sink();
    await catFile(ctx, 'home@~2/plain.txt', out.stream);
    assert.equal(out.data().toString(), 'hello, cairn\n');
    assert.equal(await fork(ctx, 'home', 'home-copy'), log[0]?.id);
    await assert.rejects(fork(ctx, 'home', 'home-copy'), /already exists/);
    writeFileSync(path.join(src, 'plain.txt'), 'changed\n');
    writeFileSync(path.join(src, 'added'), 'new\n');
    await snapshotCommand(ctx, 'home-copy', [src], { quiet: true, workers: 1 });
    const changes = await diff(ctx, 'home', 'home-copy');
    assert.deepEqual(changes.filter((c) => c.change !== 'm').map((c) => `${c.change} ${c.path}`).sort(),
      ['+ /added', 'M /plain.txt', 'M /second/hard link'].sort());
    assert.equal(readFileSync(path.join(scratch.dir, 'out', 'plain.txt'), 'utf8'), 'hello, cairn\n');
  });

  test('extract of a sub-path restores a hard link whose target is outside it as a file', async () => {
    const dest = path.join(scratch.dir, 'sub-out');
    await extract(ctx, `home@${firstId}/second`, dest, { quiet: true });
    assert.equal(readFileSync(path.join(dest, 'hard link'), 'utf8'), 'hello, cairn\n');
    await assert.rejects(extract(ctx, 'home', dest, { quiet: true }), /not empty/);
  });

  test('files of several blocks restored at once (each block opened into one shared buffer just before its write) come back byte for byte', async () => {
    const many = path.join(scratch.dir, 'many');
    mkdirSync(many);
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 10; i += 1) {
      const data = contentOf(2 * 1024 * 1024 + 70_000 * i + 17, 100 + i);
      files.set(`f${i}`, data);
      writeFileSync(path.join(many, `f${i}`), data);
    }
    await snapshotCommand(ctx, 'many', [many], { quiet: true, workers: 1 });
    const dest = path.join(scratch.dir, 'many-out');
    await extract(ctx, 'many', dest, { quiet: true });
    for (const [name, data] of files) assert.ok(readFileSync(path.join(dest, name)).equals(data), `${name} differs`);
  });
});
