import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Archive } from '../src/archive/archive.js';
import { BlockWriter } from '../src/archive/block-writer.js';
import { BlockType, KEY_TAG, FORMAT_TAG } from '../src/archive/format.js';
import { makeEngine } from '../src/archive/block-engine.js';
import { writeSnapshotRecord } from '../src/archive/snapshot-record.js';
import { pack } from '../src/archive/pack.js';
import type { CommandContext } from '../src/cli/cairn/context.js';
import { extract } from '../src/cli/cairn/extract.js';
import { ls } from '../src/cli/cairn/ls.js';
import { passwd } from '../src/cli/cairn/passwd.js';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { listTags } from '../src/cli/cairn/tags.js';
import { MemoryBackend } from '../src/backends/memory/memory-backend.js';
import { MEMBER_TAG, memberTagValue } from '../src/backends/membership.js';
import { allFiles, blockFiles, CAIRN_CLI, contentOf, makeContext, PASSPHRASE, testEnvironment } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';


function runCairn(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CAIRN_CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

describe('cairn security', () => {
  const scratch = scratchDir('cairn-security-');
  const src = path.join(scratch.dir, 'src');
  const archiveDir = path.join(scratch.dir, 'archive');
  let ctx: CommandContext;
  const samples: Buffer[] = [];
  const names = ['secret-file-name.txt', 'confidential dir', 'another-private-name'];

  before(async () => {
    mkdirSync(path.join(src, names[1] as string), { recursive: true });
    const a = contentOf(300_000, 21);
    const b = Buffer.from('The quick brown fox jumps over the lazy dog; '.repeat(2000));
    writeFileSync(path.join(src, names[0] as string), a);
    writeFileSync(path.join(src, names[1] as string, names[2] as string), b);
    for (const data of [a, b]) for (const at of [0, 1000, data.length - 16]) samples.push(data.subarray(at, at + 16));
    ctx = await makeContext(scratch.dir);
    await snapshotCommand(ctx, 'private-tag-name', [src], { quiet: true, workers: 1 });
  });
  after(() => scratch.remove());

  test('zero knowledge: no file name, tag name or 16-byte sample of content appears in any archive file', () => {
    const files = allFiles(archiveDir);
    assert.ok(files.length > 5);
    const needles: Buffer[] = [...names, 'private-tag-name'].flatMap((n) => [Buffer.from(n), Buffer.from(n, 'utf16le')]);
    needles.push(...samples);
    for (const { file, data } of files) {
      assert.ok(!file.includes('private-tag-name') && !names.some((n) => file.includes(n)), `path ${file}`);
      for (const needle of needles) assert.equal(data.indexOf(needle), -1, `${path.relative(archiveDir, file)} contains ${JSON.stringify(needle.toString('latin1'))}`);
    }
  });

  test('a wrong passphrase fails at once with a clear message, non-zero exit, nothing written', async () => {
    const before = allFiles(archiveDir).length;
    const result = await runCairn(['--config', ctx.configFile, 'snapshot', 'private-tag-name', src], { CAIRN_PASSPHRASE: 'wrong' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^cairn: wrong passphrase/m);
    assert.doesNotMatch(result.stderr, /at .*\.js/);
    assert.equal(allFiles(archiveDir).length, before);
  });

  test('passwd re-wraps the key: the new passphrase opens, the old one does not', async () => {
    process.env.CAIRN_NEW_PASSPHRASE = 'new passphrase';
    try {
      await passwd(ctx);
    } finally {
      delete process.env.CAIRN_NEW_PASSPHRASE;
    }
    await assert.rejects(listTags(ctx), /wrong passphrase/);
    process.env.CAIRN_PASSPHRASE = 'new passphrase';
    try {
      assert.deepEqual((await listTags(ctx)).map((t) => t.name), ['private-tag-name']);
      process.env.CAIRN_NEW_PASSPHRASE = PASSPHRASE;
      await passwd(ctx);
    } finally {
      delete process.env.CAIRN_NEW_PASSPHRASE;
      testEnvironment();
    }
    assert.equal((await listTags(ctx)).length, 1);
  });

  test('a corrupt block and a missing block give clear errors and a non-zero exit', async () => {
    const other = scratchDir('cairn-corrupt-');
    try {
      const c2 = await makeContext(other.dir);
      const data = path.join(other.dir, 'data');
      mkdirSync(data);
      writeFileSync(path.join(data, 'f'), contentOf(200_000, 31));
      await snapshotCommand(c2, 't', [data], { quiet: true, workers: 1 });
      const blocks = blockFiles(path.join(other.dir, 'archive'));
      const sizes = blocks.map((b) => readFileSync(b).length);
      const biggest = blocks[sizes.indexOf(Math.max(...sizes))] as string;
      const original = readFileSync(biggest);
      const flipped = Buffer.from(original);
      flipped[100] = (flipped[100] as number) ^ 1;
      writeFileSync(biggest, flipped);
      const dest = path.join(other.dir, 'out1');
      const corrupt = await runCairn(['--config', c2.configFile, 'extract', 't', dest], {});
      assert.equal(corrupt.code, 1, corrupt.stderr);
      assert.match(corrupt.stderr, /cairn: block [0-9a-f]{64} is damaged or was tampered with/);
      writeFileSync(biggest, original);
      rmSync(biggest);
      const missing = await runCairn(['--config', c2.configFile, 'cat', 't/f'], {});
      assert.equal(missing.code, 1, missing.stderr);
      assert.match(missing.stderr, /cairn: block [0-9a-f]{64} is missing from the archive/);
      assert.deepEqual(readdirSync(other.dir).filter((n) => n.startsWith('out')).flatMap((n) => readdirSync(path.join(other.dir, n))).filter((n) => n !== 'f'), []);
    } finally {
      other.remove();
    }
  });

  test('a tampered tag is refused with a clear error', async () => {
    const tags = readdirSync(path.join(archiveDir, 'tags')).filter((n) => n.startsWith('t-c-'));
    assert.equal(tags.length, 1);
    const file = path.join(archiveDir, 'tags', tags[0] as string);
    const original = readFileSync(file);
    const changed = Buffer.from(original);
    changed[20] = (changed[20] as number) ^ 0x40;
    writeFileSync(file, changed);
    try {
      const result = await runCairn(['--config', ctx.configFile, 'ls', 'private-tag-name'], {});
      assert.equal(result.code, 1);
      assert.match(result.stderr, /cairn: tag c-[0-9a-f]+ is damaged or was tampered with/);
    } finally {
      writeFileSync(file, original);
    }
  });

  test('a hostile archive with a ../ entry name is refused and nothing is written outside DEST', async () => {
    const backend = await Archive.connect(`backend-fs fs ${archiveDir}`);
    const archive = await Archive.unlock(backend, async () => PASSPHRASE);
    const writer = new BlockWriter(backend, makeEngine({ hashKey: archive.keys.blockHash, encryptionKey: archive.keys.block, compression: 'zstd', level: 3, workers: 0 }));
    const entry = (name: string): Record<string, unknown> => ({ n: Buffer.from(name), t: 1, m: 0o644, u: 0, g: 0, mt: [0, 0], s: 0, c: null });
    // Bypass writeDirectory's encoding: a directory block as an attacker holding the key would write it.
    const dirKey = await writer.add(BlockType.directory, pack([entry('../escaped'), entry('ok')]));
    const root = { level: 0, key: dirKey };
    const id = await writeSnapshotRecord(writer, {
      kind: 'tree', root, previous: null, time: Date.now(), host: 'h', user: 'u', paths: [], comment: '', skippedLog: [],
      stats: { files: 0, dirs: 0, bytesRead: 0, blocksUploaded: 0, bytesUploaded: 0, blocksReused: 0, bytesReused: 0, skipped: 0, durationMs: 0 },
    });
    await writer.flush();
    await archive.setTag('hostile', id);
    await archive.close();
    const dest = path.join(scratch.dir, 'hostile-out', 'dest');
    await assert.rejects(extract(ctx, 'hostile', dest, { quiet: true }), /refusing entry name "\.\.\/escaped"/);
    assert.equal(existsSync(path.join(scratch.dir, 'hostile-out', 'escaped')), false);
    await assert.rejects(ls(ctx, 'hostile'), /refusing entry name/);
  });

  test('an archive of a newer format, an uninitialised archive and a replica member are refused', async () => {
    const memory = new MemoryBackend();
    await assert.rejects(Archive.unlock(memory, async () => PASSPHRASE), /not initialised for cairn: run `cairn init`/);
    await memory.setTag(FORMAT_TAG, pack({ format: 'cairn', version: 99 }));
    await memory.setTag(KEY_TAG, Buffer.from('x'));
    await assert.rejects(Archive.unlock(memory, async () => PASSPHRASE), /format version 99.*upgrade cairn/);
    const memberDir = path.join(scratch.dir, 'member');
    const backend = await Archive.connect(`backend-fs fs ${memberDir}`);
    await backend.setTag(MEMBER_TAG, memberTagValue('set-1'));
    await backend.close();
    await assert.rejects(Archive.connect(`backend-fs fs ${memberDir}`), /member of the replicated set "set-1"/);
    const result = await runCairn(['--config', ctx.configFile, '--archive', `backend-fs fs ${memberDir}`, 'tags'], {});
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^cairn: .*member of the replicated set/m);
  });
});
