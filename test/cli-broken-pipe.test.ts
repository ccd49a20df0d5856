/**
 * A reader that goes away before the command's output is written (as with
 * `cairn log home | head -0`) ends the command with 141, like SIGPIPE ends
 * other tools, and without a stack trace: the CLIs run as child processes
 * whose stdout pipe is closed at once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BROKEN_PIPE_EXIT } from '../src/cli/broken-pipe.js';
import { makeContext, PASSPHRASE } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-broken-pipe-');
after(() => scratch.remove());

/** Runs `script args` with its stdout closed before it writes; resolves with its exit status and what it wrote to stderr. */
function withStdoutClosed(script: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL(`../src/cli/${script}`, import.meta.url)), ...args], {
    env: { ...process.env, CAIRN_PASSPHRASE: PASSPHRASE, CAIRN_TEST_SCRYPT_N: '1024' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stderr })));
}

test('cairn snapshot and cairn log whose reader is gone exit with 141 and print nothing', async () => {
  const ctx = await makeContext(scratch.dir);
  const tree = path.join(scratch.dir, 'tree');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'a.txt'), 'hello\n');
  const snapshot = await withStdoutClosed('cairn.js', ['--config', ctx.configFile, 'snapshot', 'home', tree, '-q']);
  assert.deepEqual(snapshot, { status: BROKEN_PIPE_EXIT, stderr: '' });
  const log = await withStdoutClosed('cairn.js', ['--config', ctx.configFile, 'log', 'home']);
  assert.deepEqual(log, { status: BROKEN_PIPE_EXIT, stderr: '' });
});

test('archive-admin whose reader is gone exits with 141 and prints nothing', async () => {
  const result = await withStdoutClosed('archive-admin.js', [`backend-fs fs ${path.join(scratch.dir, 'archive')}`, 'info']);
  assert.deepEqual(result, { status: BROKEN_PIPE_EXIT, stderr: '' });
});
