/**
 * A restore that cannot write (here: a file-size limit, `ulimit -f`, a real
 * fault: the kernel refuses writes past it with EFBIG) stops at the first
 * failure and says which file, in one line, with exit status 1; the
 * files it had finished are whole.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { CAIRN_CLI, cliEnvironment, contentOf, makeContext } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-restore-failure-');
after(() => scratch.remove());

test('extract under a file-size limit fails on the big file with one line and status 1; the small file is whole', async () => {
  const ctx = await makeContext(scratch.dir);
  const tree = path.join(scratch.dir, 'tree');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'big.bin'), contentOf(300_000, 7));
  writeFileSync(path.join(tree, 'a-small.txt'), 'fits under the limit\n');
  await snapshotCommand(ctx, 'home', [tree], { quiet: true, workers: 0 });
  const dest = path.join(scratch.dir, 'restored');
  // bash's ulimit -f counts KiB: writes past 64 KiB of a file fail (Node ignores SIGXFSZ).
  const child = spawnSync('bash', ['-c', 'ulimit -f 64 && exec "$@"', 'bash', process.execPath, CAIRN_CLI, '--config', ctx.configFile, 'extract', '-q', 'home', dest], {
    encoding: 'utf8', env: cliEnvironment(),
  });
  assert.equal(child.status, 1, child.stderr);
  const lines = child.stderr.trim().split('\n');
  assert.equal(lines.length, 1, child.stderr);
  assert.match(lines[0] as string, /^cairn: cannot write .*\/big\.bin: EFBIG: file too large/);
  assert.equal(readFileSync(path.join(dest, 'a-small.txt'), 'utf8'), 'fits under the limit\n');
});
