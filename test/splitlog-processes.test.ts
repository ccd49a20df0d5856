/**
 * Two processes on one splitlog (issue 3, "Concurrency"): two spawned
 * writers and archive-admin at the same time do not corrupt it; one writer
 * at a time, readers proceed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';

const ARCHIVE_ADMIN = fileURLToPath(new URL('../src/cli/archive-admin.js', import.meta.url));
const run = promisify(execFile);

async function writeMany(backend: Backend, prefix: string, seed: number): Promise<void> {
  for (let round = 0; round < 6; round += 1) {
    const puts: Array<Promise<void>> = [];
    for (let i = 0; i < 8; i += 1) {
      puts.push(backend.put(`${prefix}${round * 8 + i}`, patternBytes(20_000 + i * 500, seed + round * 8 + i)));
      // The same block from both writers: the second put must be a no-op.
      puts.push(backend.put(`shared${round * 8 + i}`, patternBytes(5_000, 1000 + round * 8 + i)));
    }
    await Promise.all(puts);
    await backend.setTag(`${prefix}tag`, Buffer.from(String(round)));
    if (round % 2 === 1) await backend.remove(`${prefix}${round * 8}`);
    await backend.flush();
  }
}

describe('splitlog shared by several processes', () => {
  it('two writer processes and archive-admin at once leave every block intact and check clean', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite 300000`;
    try {
      const a = await openArchive(identifier, { spawnOwn: true, onLog: () => undefined });
      const b = await openArchive(identifier, { spawnOwn: true, onLog: () => undefined });
      const reader = await openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
      try {
        const admin = (async () => {
          const outputs: string[] = [];
          for (const command of ['stats', 'check', 'info']) {
            const { stdout } = await run(process.execPath, [ARCHIVE_ADMIN, identifier, command]);
            outputs.push(stdout);
          }
          return outputs;
        })();
        const reads = (async () => {
          // A reader proceeds while others write: whatever it sees is intact.
          for (let n = 0; n < 30; n += 1) {
            const data = await reader.get('a3');
            if (data !== null) assert.deepEqual(Buffer.from(data), patternBytes(20_000 + 3 * 500, 1 + 3));
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        })();
        const [, , outputs] = await Promise.all([writeMany(a, 'a', 1), writeMany(b, 'b', 5000), admin, reads]);
        assert.match(outputs[1] as string, /no problems/);
      } finally {
        await a.close();
        await b.close();
        await reader.close();
      }

      const check = await openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
      try {
        for (const [prefix, seed] of [['a', 1], ['b', 5000]] as const) {
          for (let n = 0; n < 48; n += 1) {
            const data = await check.get(`${prefix}${n}`);
            if (n % 16 === 8) assert.equal(data, null, `${prefix}${n} was removed`);
            else assert.deepEqual(Buffer.from(data as Uint8Array), patternBytes(20_000 + (n % 8) * 500, seed + n), `${prefix}${n}`);
          }
          assert.equal(Buffer.from((await check.getTag(`${prefix}tag`)) as Uint8Array).toString(), '5');
        }
        for (let n = 0; n < 48; n += 1) assert.deepEqual(Buffer.from((await check.get(`shared${n}`)) as Uint8Array), patternBytes(5_000, 1000 + n));
        const [keys] = await check.listBlocks(null, 10_000);
        assert.equal(keys.length, new Set(keys).size);
        assert.equal(keys.length, 48 * 3 - 6);
        const report = await check.admin('check', []);
        assert.equal((report.data as { ok: boolean }).ok, true, report.text);
        const stats = await check.stats();
        assert.equal(stats.blocks, 48 * 3 - 6);
      } finally {
        await check.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('a writer that never pauses hands the writer lock to a process waiting for it', async (t) => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite`;
    try {
      const setup = await openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
      await setup.admin('set-commit-interval', ['600']);
      await setup.close();
      const busy = await openArchive(identifier, { spawnOwn: true, onLog: () => undefined });
      const other = await openArchive(identifier, { spawnOwn: true, onLog: () => undefined });
      try {
        let stop = false;
        let written = 0;
        const streaming = (async () => {
          const inFlight = new Set<Promise<void>>();
          for (let i = 0; !stop; i += 1) {
            const put = busy.put(`busy${i}`, patternBytes(50_000, i)).then(() => { written += 1; }).finally(() => inFlight.delete(put));
            inFlight.add(put);
            if (inFlight.size >= 8) await Promise.race(inFlight);
          }
          await Promise.all(inFlight);
        })();
        while (written < 20) await new Promise((resolve) => setTimeout(resolve, 20));
        const started = Date.now();
        await other.put('from-other', Buffer.from('got in'));
        await other.flush();
        const waited = Date.now() - started;
        const writtenWhileWaiting = written;
        await new Promise((resolve) => setTimeout(resolve, 300));
        stop = true;
        await streaming;
        assert.ok(waited < 10_000, `waited ${waited} ms for the writer lock`);
        t.diagnostic(`waited ${waited} ms for the writer lock; ${writtenWhileWaiting} blocks written meanwhile`);
        assert.ok(written > writtenWhileWaiting, 'the busy writer carried on afterwards');
        await busy.flush();
        assert.equal(Buffer.from((await busy.get('from-other')) as Uint8Array).toString(), 'got in');
        for (let i = 0; i < written; i += 1) assert.equal(await other.exists(`busy${i}`), true, `busy${i}`);
      } finally {
        await busy.close();
        await other.close();
      }
    } finally {
      scratch.remove();
    }
  });
});
