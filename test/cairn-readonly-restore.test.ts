/**
 * Read-only directories with contents restore for a user without the power
 * to write into them (root has it; the commands then run as `nobody`):
 * extract sets a directory's mode only after everything in it is written.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertSameTree, CAIRN_CLI, cliEnvironment, contentOf, isRoot, walkTree } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-readonly-');
after(() => {
  // Read-only directories the scratch removal would trip on.
  execFileSync('chmod', ['-R', 'u+rwx', scratch.dir]);
  scratch.remove();
});

/** Runs the cairn CLI as `nobody` when root (as this user otherwise); fails the test on a non-zero exit. */
function cairnAsUser(args: string[]): string {
  const asOther = isRoot ? { uid: 65534, gid: 65534 } : {};
  const child = spawnSync(process.execPath, [CAIRN_CLI, ...args], {
    encoding: 'utf8', ...asOther,
    env: cliEnvironment({ HOME: scratch.dir }),
  });
  assert.equal(child.status, 0, `cairn ${args.join(' ')}: ${child.stderr}`);
  return child.stdout;
}

test('a read-only directory with files and a read-only subdirectory in it is restored, contents first, then its mode', () => {
  const base = path.join(scratch.dir, 'work');
  const src = path.join(base, 'src');
  mkdirSync(path.join(src, 'locked', 'inner'), { recursive: true });
  writeFileSync(path.join(src, 'locked', 'a.txt'), 'in a read-only directory\n');
  writeFileSync(path.join(src, 'locked', 'inner', 'b.bin'), contentOf(200_000, 3));
  writeFileSync(path.join(src, 'top.txt'), 'top\n');
  chmodSync(path.join(src, 'locked', 'inner'), 0o555);
  chmodSync(path.join(src, 'locked'), 0o500);
  chmodSync(scratch.dir, 0o755);
  if (isRoot) execFileSync('chown', ['-R', '65534:65534', base]);

  const config = path.join(base, 'config.toml');
  cairnAsUser(['--config', config, 'init', '--archive', `backend-fs fs ${base}/archive`, '--file-cache', `${base}/files.sqlite`]);
  cairnAsUser(['--config', config, 'snapshot', 'ro', src, '-q']);
  const out = path.join(base, 'out');
  cairnAsUser(['--config', config, 'extract', 'ro', out]);

  assertSameTree(walkTree(out), walkTree(src));
});
