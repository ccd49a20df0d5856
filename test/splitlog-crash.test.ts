/**
 * Crash tests of the splitlog store with real processes: a child writes and
 * flushes blocks and is killed with SIGKILL at many points; reopening must
 * lose no flushed block and return only intact blocks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openArchive } from '../src/backends/open.js';
import { scratchDir } from './support/scratch.js';
import { allKeys, expectIntact, kill, startChild } from './support/splitlog-child-runner.js';

describe('splitlog crash recovery with real processes', () => {
  it('a writer killed with SIGKILL at many points loses no flushed block, and every block it returns is intact', async (t) => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite 2000000`;
    try {
      let next = 0;
      let durable = -1;
      let tornTails = 0;
      const rounds = 10;
      for (let round = 0; round < rounds; round += 1) {
        const child = startChild([identifier, String(next), String(1 + (round % 4))]);
        // Kill after a varying number of flushes, then at a varying moment after the last one.
        await child.waitFor('flushed', 1 + (round % 3));
        await new Promise((resolve) => setTimeout(resolve, (round * 7) % 23));
        await kill(child);
        durable = Math.max(durable, child.lastFlushed());
        const warnings: string[] = [];
        const backend = await openArchive(identifier, { spawnOwn: false, onLog: (level, text) => { if (level === 'warning') warnings.push(text); } });
        try {
          if (warnings.some((w) => /dropped \d+ bytes/.test(w))) tornTails += 1;
          for (let i = 0; i <= durable; i += 1) await expectIntact(backend, `b${i}`);
          const tag = await backend.getTag('latest');
          assert.ok(tag !== null && Number(Buffer.from(tag).toString()) >= child.lastFlushed(), 'the flushed tag survived');
          const keys = await allKeys(backend);
          for (const key of keys) await expectIntact(backend, key);
          next = Math.max(...keys.map((k) => Number(k.slice(1)))) + 1;
        } finally {
          await backend.close();
        }
      }
      const check = await openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
      try {
        const report = await check.admin('check', []);
        assert.equal((report.data as { ok: boolean }).ok, true, report.text);
      } finally {
        await check.close();
      }
      t.diagnostic(`${rounds} kills, ${durable + 1} blocks flushed, ${tornTails} torn tails cut off`);
    } finally {
      scratch.remove();
    }
  });
});
