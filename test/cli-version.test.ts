/**
 * Every cairn executable answers --version (and -V) with its name and the
 * package's version on standard output, and exits 0: the installed cairn
 * command through its launcher, archive-admin, and each backend.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { cliEnvironment } from './cairn-fixtures.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { version } = JSON.parse(readFileSync(new URL('package.json', `file://${root}`), 'utf8')) as { version: string };

function run(file: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const command = file.endsWith('.js') ? process.execPath : file;
  const argv = file.endsWith('.js') ? [file, ...args] : args;
  return spawnSync(command, argv, { encoding: 'utf8', env: cliEnvironment() });
}

test('cairn --version and -V print the package version through the installed launcher', () => {
  for (const flag of ['--version', '-V']) {
    const { status, stdout } = run(`${root}bin/cairn`, [flag]);
    assert.equal(status, 0, flag);
    assert.equal(stdout, `cairn ${version}\n`, flag);
  }
});

test('archive-admin and every backend executable answer --version', () => {
  const names = ['archive-admin', 'backend-fs', 'backend-cache', 'backend-throttle', 'backend-replicated', 'backend-sftp', 'backend-s3', 'backend-faulty'];
  for (const name of names) {
    const { status, stdout, stderr } = run(`${root}dist/src/cli/${name}.js`, ['--version']);
    assert.equal(status, 0, `${name}: ${stderr}`);
    assert.equal(stdout, `${name} (cairn) ${version}\n`, name);
  }
});
