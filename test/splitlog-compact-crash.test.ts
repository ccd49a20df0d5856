/**
 * `compact` is crash-safe at every step: a process compacting is killed
 * with SIGKILL at many moments; after each kill the archive holds every
 * live block and tag intact, nothing removed comes back (not even through a
 * reindex), and check finds no problem.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';

const CHILD = fileURLToPath(new URL('./support/splitlog-compact-child.js', import.meta.url));
const BLOCKS = 120;
const live = (i: number): boolean => i % 3 === 0;

async function verify(backend: Backend, what: string): Promise<void> {
  for (let i = 0; i < BLOCKS; i += 1) {
    const data = await backend.get(`c${i}`);
    if (live(i)) assert.ok(data !== null && Buffer.from(data).equals(patternBytes(64_000, i)), `${what}: c${i} intact`);
    else assert.equal(data, null, `${what}: c${i} stays removed`);
  }
  assert.deepEqual(await backend.listTags(), ['kept'], what);
  const report = await backend.admin('check', []);
  assert.equal((report.data as { ok: boolean }).ok, true, `${what}: ${report.text}`);
}

function compactAndKill(identifier: string, delayMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, identifier], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      if (out.includes('compacting') && !out.includes('killing')) {
        out += 'killing\n';
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve(out.includes('done') ? 'finished' : 'killed');
      else reject(new Error(`compaction child failed (${code}): ${stderr}`));
    });
  });
}

describe('splitlog compaction under SIGKILL', () => {
  it('a compaction killed at many moments loses nothing live and brings nothing removed back', async (t) => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite 262144`;
    try {
      const setup = await openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
      for (let i = 0; i < BLOCKS; i += 1) await setup.put(`c${i}`, patternBytes(64_000, i));
      await setup.setTag('kept', Buffer.from('k'));
      await setup.setTag('dropped', Buffer.from('d'));
      for (let i = 0; i < BLOCKS; i += 1) if (!live(i)) await setup.remove(`c${i}`);
      await setup.removeTag('dropped');
      await setup.close();

      const outcomes: string[] = [];
      for (const delay of [0, 3, 10, 25, 50, 100, 200, 400]) {
        const outcome = await compactAndKill(identifier, delay);
        outcomes.push(`${delay} ms: ${outcome}, ${readdirSync(`${scratch.dir}/logs`).length} logs`);
        const backend = await openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
        try {
          await verify(backend, `killed ${delay} ms into compact`);
        } finally {
          await backend.close();
        }
      }
      const backend = await openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
      try {
        await backend.admin('compact', ['10']);
        await verify(backend, 'after a full compact');
        await backend.admin('reindex', []);
        await verify(backend, 'after compact and reindex');
      } finally {
        await backend.close();
      }
      t.diagnostic(`outcomes: ${outcomes.join(', ')}`);
    } finally {
      scratch.remove();
    }
  });
});
