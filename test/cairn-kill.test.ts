import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { contentOf, blockFiles, CAIRN_CLI, makeContext, PASSPHRASE, walkTree, assertSameTree } from './cairn-fixtures.js';
import { scratchDir, sleep } from './support/scratch.js';

const scratch = scratchDir('cairn-kill-');
after(() => scratch.remove());

/** Runs the real cairn binary with the backend spawned as a child process (CAIRN_SPAWN_BACKENDS=1). */
function run(args: string[]): { done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>; kill(): void } {
  const child = spawn(process.execPath, [CAIRN_CLI, ...args], {
    env: { ...process.env, CAIRN_PASSPHRASE: PASSPHRASE, CAIRN_SPAWN_BACKENDS: '1', CAIRN_SEAL_WORKERS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  return {
    done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))),
    kill: () => child.kill('SIGKILL'),
  };
}

test('a snapshot killed with SIGKILL (spawned backend) loses nothing; the re-run uploads only what is missing and extract matches', async () => {
  const src = path.join(scratch.dir, 'src');
  for (let d = 0; d < 4; d += 1) {
    mkdirSync(path.join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < 6; f += 1) writeFileSync(path.join(src, `d${d}`, `f${f}`), contentOf(1024 * 1024 + d * 1000 + f, 100 + d * 10 + f));
  }
  const ctx = await makeContext(scratch.dir, `backend-fs fs ${scratch.dir}/archive`, path.join(scratch.dir, 'files.sqlite'));
  const archive = path.join(scratch.dir, 'archive');
  const blocksAtStart = blockFiles(archive).length;

  const first = run(['--config', ctx.configFile, 'snapshot', 'home', src, '-q']);
  const deadline = Date.now() + 60_000;
  while (blockFiles(archive).length < blocksAtStart + 6 && Date.now() < deadline) await sleep(10);
  first.kill();
  const killed = await first.done;
  assert.equal(killed.signal, 'SIGKILL', `the snapshot finished before it could be killed: ${killed.stdout}`);
  // The spawned backend outlives its killed client for a moment and may still store what it had been sent:
  // count once the archive has stopped changing (under load the count was taken too early, and the re-run then
  // reused blocks the count did not include).
  let afterKill = blockFiles(archive).length;
  for (let stableSince = Date.now(); Date.now() - stableSince < 500 && Date.now() < deadline + 10_000;) {
    await sleep(50);
    const now = blockFiles(archive).length;
    if (now !== afterKill) {
      afterKill = now;
      stableSince = Date.now();
    }
  }
  assert.ok(afterKill > blocksAtStart, 'some blocks were stored before the kill');

  const tags = await run(['--config', ctx.configFile, 'tags', '--json']).done;
  assert.equal(tags.code, 0, tags.stderr);
  assert.deepEqual(JSON.parse(tags.stdout), [], 'the tag was not moved by the killed snapshot');

  const second = await run(['--config', ctx.configFile, 'snapshot', 'home', src, '-q']).done;
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /^snapshot [0-9a-f]{64}\nroot [0-9a-f]{64}/);
  const log = await run(['--config', ctx.configFile, 'log', 'home', '--json']).done;
  const stats = (JSON.parse(log.stdout) as Array<{ stats: { blocksUploaded: number; blocksReused: number } }>)[0]?.stats;
  assert.ok(stats !== undefined && stats.blocksReused >= afterKill - blocksAtStart - 2, `re-run reused ${stats?.blocksReused} of the ${afterKill - blocksAtStart} blocks stored before the kill`);
  assert.ok(stats.blocksUploaded + (afterKill - blocksAtStart) >= 24, 'every chunk was stored once');

  const dest = path.join(scratch.dir, 'out');
  const extracted = await run(['--config', ctx.configFile, 'extract', 'home', dest, '-q']).done;
  assert.equal(extracted.code, 0, extracted.stderr);
  assertSameTree(walkTree(dest), walkTree(src));
});
