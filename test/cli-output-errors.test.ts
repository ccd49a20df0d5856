/**
 * Output that cannot be written ends the CLIs in one line, never a stack
 * trace: a reader that went away before the output was written (as with
 * `cairn log home | head -0`: the child's stdout pipe is closed at once)
 * gives 141, as SIGPIPE ends other tools; a full device (`> /dev/full`, a
 * real ENOSPC) gives 1 and says so.
 */
import assert from 'node:assert/strict';
import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BROKEN_PIPE_EXIT } from '../src/cli/output-errors.js';
import { cliEnvironment, makeContext } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-output-errors-');
after(() => scratch.remove());

/** Runs `script args` with stdout closed before it writes (`closed`) or on /dev/full; resolves with its exit status and stderr. */
function run(script: string, args: string[], stdout: 'closed' | 'full'): Promise<{ status: number | null; stderr: string }> {
  const full = stdout === 'full' ? openSync('/dev/full', 'w') : null;
  const stdio: StdioOptions = ['ignore', full ?? 'pipe', 'pipe'];
  const child = spawn(process.execPath, [fileURLToPath(new URL(`../src/cli/${script}`, import.meta.url)), ...args], {
    env: cliEnvironment(),
    stdio,
  });
  if (full !== null) closeSync(full);
  child.stdout?.destroy();
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stderr })));
}

test('cairn snapshot and cairn log whose reader is gone exit with 141 and print nothing; on a full device, 1 and one line', async () => {
  const ctx = await makeContext(scratch.dir);
  const tree = path.join(scratch.dir, 'tree');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'a.txt'), 'hello\n');
  const snapshot = await run('cairn.js', ['--config', ctx.configFile, 'snapshot', 'home', tree, '-q'], 'closed');
  assert.deepEqual(snapshot, { status: BROKEN_PIPE_EXIT, stderr: '' });
  const log = await run('cairn.js', ['--config', ctx.configFile, 'log', 'home'], 'closed');
  assert.deepEqual(log, { status: BROKEN_PIPE_EXIT, stderr: '' });
  const full = await run('cairn.js', ['--config', ctx.configFile, 'log', 'home'], 'full');
  assert.deepEqual(full, { status: 1, stderr: 'cairn: cannot write the output: ENOSPC: no space left on device, write\n' });
});

test('archive-admin whose reader is gone exits with 141 and prints nothing; on a full device, 1 and one line', async () => {
  const identifier = `backend-fs fs ${path.join(scratch.dir, 'archive')}`;
  assert.deepEqual(await run('archive-admin.js', [identifier, 'info'], 'closed'), { status: BROKEN_PIPE_EXIT, stderr: '' });
  assert.deepEqual(await run('archive-admin.js', [identifier, 'info'], 'full'), { status: 1, stderr: 'archive-admin: cannot write the output: ENOSPC: no space left on device, write\n' });
});
