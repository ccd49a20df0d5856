/**
 * The cache warm-up of a snapshot (src/archive/warm-up.ts): while the
 * passphrase is stretched, a walk lists the directories to be snapshotted
 * (nothing kept), in slices, until it is stopped or finds the cache warm.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { warmUp } from '../src/archive/warm-up.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-warm-up-');
after(() => scratch.remove());

const root = path.join(scratch.dir, 'tree');
for (let a = 0; a < 6; a += 1) {
  for (let b = 0; b < 5; b += 1) {
    mkdirSync(path.join(root, `a${a}`, `b${b}`), { recursive: true });
    writeFileSync(path.join(root, `a${a}`, `b${b}`, 'file'), 'x');
  }
}

// A directory whose name is not UTF-8, with one below it: walked like the others.
const latin1 = Buffer.concat([Buffer.from(`${root}/caf`), Buffer.from([0xe9])]);
mkdirSync(Buffer.concat([latin1, Buffer.from('/below')]), { recursive: true });

test('the warm-up lists every directory under the paths (names that are not UTF-8 too), and a file or a missing path is passed over', async () => {
  const warm = warmUp([root, path.join(root, 'a0', 'b0', 'file'), path.join(scratch.dir, 'missing')]);
  assert.equal(await warm.listed, 1 + 6 + 6 * 5 + 2);
});

test('a stopped warm-up ends at its next slice', async () => {
  // Slices of 0 ms list one directory each: stopped after the first turn, it has listed very few.
  const warm = warmUp([root], { sliceMs: 0 });
  await new Promise((resolve) => setImmediate(resolve));
  warm.stop();
  const listed = await warm.listed;
  assert.ok(listed >= 1 && listed < 39, `listed ${listed} directories`);
  assert.equal(await warm.warm, false, 'stopped before it could tell');
});

test('listings that come back fast make the warm-up call the tree warm at its first judgement and end; slow ones keep it walking', async () => {
  // The threshold decides what counts as slow: none are over a second, all are over -1 us.
  const fast = warmUp([root], { coldMicros: 1e6, judgeEvery: 8 });
  assert.equal(await fast.warm, true);
  assert.equal(await fast.listed, 8, 'ended at its first judgement');
  const slow = warmUp([root], { coldMicros: -1, judgeEvery: 8 });
  assert.equal(await slow.warm, false);
  assert.equal(await slow.listed, 1 + 6 + 6 * 5 + 2, 'walked everything');
  // A tree smaller than one judgement is judged at its end.
  const small = warmUp([path.join(root, 'a1')], { coldMicros: 1e6 });
  assert.equal(await small.listed, 6);
  assert.equal(await small.warm, true);
});

test('a directory that can be listed but not searched is passed over, not thrown on (run as another user when root)', () => {
  // Readable without search permission: readdir works, lstat of its entries fails with EACCES.
  const base = path.join(scratch.dir, 'perm');
  mkdirSync(path.join(base, 'locked', 'inner'), { recursive: true });
  chmodSync(scratch.dir, 0o755);
  chmodSync(base, 0o755);
  chmodSync(path.join(base, 'locked'), 0o644);
  const warmUpModule = new URL('../src/archive/warm-up.js', import.meta.url).href;
  const script = `const { warmUp } = await import(${JSON.stringify(warmUpModule)}); console.log(await warmUp([${JSON.stringify(base)}]).listed);`;
  const asOther = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', ...asOther });
  assert.equal(child.status, 0, child.stderr);
  // base and locked are listed; inner cannot be reached.
  assert.equal(child.stdout.trim(), '2');
});
