/**
 * A restore that cannot write (here: a file-size limit, `ulimit -f`, a real
 * fault: the kernel refuses writes past it with EFBIG) stops at the first
 * failure and says which file, in one line, with exit status 1; the
 * files it had finished are whole, and the one it was writing is removed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { blockFiles, CAIRN_CLI, cliEnvironment, contentOf, makeContext } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-restore-failure-');
after(() => scratch.remove());

/** Restores `tree`'s snapshot under `ulimit -f 64` (KiB: writes past 64 KiB of a file fail; Node ignores SIGXFSZ). */
function extractUnderLimit(ctx: { configFile: string }, dest: string, env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } {
  return spawnSync('bash', ['-c', 'ulimit -f 64 && exec "$@"', 'bash', process.execPath, CAIRN_CLI, '--config', ctx.configFile, 'extract', '-q', 'home', dest], {
    encoding: 'utf8', env: cliEnvironment(env),
  });
}

for (const thread of ['1', '0']) {
  test(`extract under a file-size limit fails on the big file with one line and status 1; the small file is whole, the big one not left (restore thread ${thread === '1' ? 'on' : 'off'})`, async () => {
    const dir = path.join(scratch.dir, `one-block-${thread}`);
    mkdirSync(dir);
    const ctx = await makeContext(dir);
    const tree = path.join(dir, 'tree');
    mkdirSync(tree);
    writeFileSync(path.join(tree, 'big.bin'), contentOf(300_000, 7));
    writeFileSync(path.join(tree, 'a-small.txt'), 'fits under the limit\n');
    await snapshotCommand(ctx, 'home', [tree], { quiet: true, workers: 0 });
    const dest = path.join(dir, 'restored');
    const child = extractUnderLimit(ctx, dest, { CAIRN_RESTORE_THREAD: thread });
    assert.equal(child.status, 1, child.stderr);
    const lines = child.stderr.trim().split('\n');
    assert.equal(lines.length, 1, child.stderr);
    assert.match(lines[0] as string, /^cairn: cannot write .*\/big\.bin: EFBIG: file too large/);
    assert.equal(readFileSync(path.join(dest, 'a-small.txt'), 'utf8'), 'fits under the limit\n');
    // Its first 64 KiB were written before the failure: the partial file is removed, not left looking restored.
    assert.equal(existsSync(path.join(dest, 'big.bin')), false, 'big.bin was left behind, short');
  });
}

/** An archive in scratch/`name` whose tag home holds one file, large.bin, of several blocks (6 MiB of pattern `seed`). */
async function archiveOfLargeFile(name: string, seed: number): Promise<{ dir: string; ctx: Awaited<ReturnType<typeof makeContext>> }> {
  const dir = path.join(scratch.dir, name);
  mkdirSync(dir);
  const ctx = await makeContext(dir);
  const tree = path.join(dir, 'tree');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'large.bin'), contentOf(6 * 1024 * 1024, seed));
  await snapshotCommand(ctx, 'home', [tree], { quiet: true, workers: 0 });
  return { dir, ctx };
}

test('a file of several blocks that cannot be written whole is removed, not left short', async () => {
  const { dir, ctx } = await archiveOfLargeFile('several-blocks', 11);
  const dest = path.join(dir, 'restored');
  const child = extractUnderLimit(ctx, dest);
  assert.equal(child.status, 1, child.stderr);
  assert.match(child.stderr, /^cairn: cannot write .*\/large\.bin: EFBIG: file too large/);
  assert.equal(existsSync(path.join(dest, 'large.bin')), false, 'large.bin was left behind, short');
  assert.equal(existsSync(dest), true, 'the destination itself stays');
});

test('a file of several blocks one of which turns out damaged is removed, not left short', async () => {
  const { dir, ctx } = await archiveOfLargeFile('damaged-block', 13);
  // The biggest block is one of large.bin's data blocks: a bit flipped in it fails its authentication.
  const blocks = blockFiles(path.join(dir, 'archive'));
  const sizes = blocks.map((b) => readFileSync(b).length);
  const biggest = blocks[sizes.indexOf(Math.max(...sizes))] as string;
  const damaged = readFileSync(biggest);
  damaged[200] = (damaged[200] as number) ^ 1;
  writeFileSync(biggest, damaged);
  const dest = path.join(dir, 'restored');
  const child = spawnSync(process.execPath, [CAIRN_CLI, '--config', ctx.configFile, 'extract', '-q', 'home', dest], { encoding: 'utf8', env: cliEnvironment() });
  assert.equal(child.status, 1, child.stderr);
  assert.match(child.stderr, /^cairn: block [0-9a-f]{64} is damaged or was tampered with/);
  // Created before its first block was read: without the removal it stays, short.
  assert.equal(existsSync(path.join(dest, 'large.bin')), false, 'large.bin was left behind, short');
});
