/**
 * The installed `cairn` command is bin/cairn, a shell launcher that adds
 * glibc's huge-page tunable to whatever GLIBC_TUNABLES the caller set,
 * called as it is installed (through a symlink, as npm links commands) or
 * directly. A passphrase command (a child of cairn) reports the environment
 * cairn ran with.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { scratchDir } from './support/scratch.js';

const launcher = fileURLToPath(new URL('../../bin/cairn', import.meta.url));
const scratch = scratchDir('cairn-launcher-');
after(() => scratch.remove());

/**
 * Runs `command init` with `tunables` (undefined: unset) and NODE_OPTIONS
 * `nodeOptions`; returns what GLIBC_TUNABLES was inside it, and the node
 * command line it ran as (its arguments joined by spaces).
 */
function seenBy(command: string, name: string, tunables: string | undefined, nodeOptions?: string): { tunables: string; cmdline: string } {
  const dir = path.join(scratch.dir, name);
  const seen = path.join(scratch.dir, `${name}.env`);
  const cmdline = path.join(scratch.dir, `${name}.cmdline`);
  const askpass = path.join(scratch.dir, `${name}.askpass`);
  writeFileSync(askpass, `#!/bin/sh\nprintf '%s' "$GLIBC_TUNABLES" > '${seen}'\ntr '\\0' ' ' < /proc/$PPID/cmdline > '${cmdline}'\necho launcher-test\n`);
  chmodSync(askpass, 0o700);
  const env: NodeJS.ProcessEnv = { ...process.env, CAIRN_TEST_SCRYPT_N: '1024', HOME: scratch.dir, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  delete env.CAIRN_PASSPHRASE;
  delete env.GLIBC_TUNABLES;
  if (tunables !== undefined) env.GLIBC_TUNABLES = tunables;
  delete env.NODE_OPTIONS;
  if (nodeOptions !== undefined) env.NODE_OPTIONS = nodeOptions;
  const child = spawnSync(command, ['--config', `${dir}.toml`, '--archive', `backend-fs fs ${dir}`, '--passphrase-command', askpass, 'init'], { encoding: 'utf8', env });
  assert.equal(child.status, 0, `cairn init: ${child.stderr}`);
  return { tunables: readFileSync(seen, 'utf8'), cmdline: readFileSync(cmdline, 'utf8') };
}

function tunablesSeenBy(command: string, name: string, tunables: string | undefined): string {
  return seenBy(command, name, tunables).tunables;
}

test('the cairn command runs with glibc huge pages for large allocations, called directly or through a symlink', () => {
  assert.equal(tunablesSeenBy(launcher, 'direct', undefined), 'glibc.malloc.hugetlb=1');
  const linked = path.join(scratch.dir, 'cairn');
  symlinkSync(launcher, linked);
  assert.equal(tunablesSeenBy(linked, 'linked', undefined), 'glibc.malloc.hugetlb=1');
});

test('tunables the caller set are kept, the huge-page one added after them', () => {
  assert.equal(tunablesSeenBy(launcher, 'preset', 'glibc.malloc.check=0'), 'glibc.malloc.check=0:glibc.malloc.hugetlb=1');
});

test('the cairn command starts node with semi-spaces of 8 MiB, unless NODE_OPTIONS sets a semi-space size of its own', () => {
  const plain = seenBy(launcher, 'young', undefined).cmdline;
  assert.match(plain, /^\S*node --max-semi-space-size=8 \S+\/dist\/src\/cli\/cairn\.js --config /);
  const own = seenBy(launcher, 'young-own', undefined, '--max-semi-space-size=16').cmdline;
  assert.doesNotMatch(own, /--max-semi-space-size=8/);
  assert.match(own, /^\S*node \S+\/dist\/src\/cli\/cairn\.js --config /);
});
