/**
 * The installed `cairn` command is the built script run through its first
 * line: `env -S` adds glibc's huge-page tunable to whatever GLIBC_TUNABLES the
 * caller set. A passphrase command (a child of cairn) reports the environment
 * cairn ran with.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { scratchDir } from './support/scratch.js';

const cairn = fileURLToPath(new URL('../src/cli/cairn.js', import.meta.url));
const scratch = scratchDir('cairn-launcher-');
after(() => scratch.remove());

/** Runs `cairn init` as an executable with `tunables` (undefined: unset); returns what GLIBC_TUNABLES was inside it. */
function tunablesSeenBy(name: string, tunables: string | undefined): string {
  const dir = path.join(scratch.dir, name);
  const seen = path.join(scratch.dir, `${name}.env`);
  const askpass = path.join(scratch.dir, `${name}.askpass`);
  writeFileSync(askpass, `#!/bin/sh\nprintf '%s' "$GLIBC_TUNABLES" > '${seen}'\necho launcher-test\n`);
  chmodSync(askpass, 0o700);
  const env: NodeJS.ProcessEnv = { ...process.env, CAIRN_TEST_SCRYPT_N: '1024', HOME: scratch.dir };
  delete env.CAIRN_PASSPHRASE;
  delete env.GLIBC_TUNABLES;
  if (tunables !== undefined) env.GLIBC_TUNABLES = tunables;
  const child = spawnSync(cairn, ['--config', `${dir}.toml`, '--archive', `backend-fs fs ${dir}`, '--passphrase-command', askpass, 'init'], { encoding: 'utf8', env });
  assert.equal(child.status, 0, `cairn init: ${child.stderr}`);
  return readFileSync(seen, 'utf8');
}

test('the cairn command runs with glibc huge pages for large allocations', () => {
  assert.equal(tunablesSeenBy('unset', undefined), ':glibc.malloc.hugetlb=1');
});

test('tunables the caller set are kept, the huge-page one added after them', () => {
  assert.equal(tunablesSeenBy('preset', 'glibc.malloc.check=0'), 'glibc.malloc.check=0:glibc.malloc.hugetlb=1');
});
