/**
 * A splitlog log cut at every byte offset of its last record recovers
 * cleanly: written by a process killed before a flush, the torn tail is cut
 * off with a warning; already indexed, only that block answers corrupt.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { BackendError } from '../src/backends/errors.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';
import { expectIntact, kill, startChild } from './support/splitlog-child-runner.js';

describe('splitlog torn tails', () => {
  it('a log cut at every byte offset of its last record recovers cleanly: unflushed, the tail goes; indexed, only that block answers corrupt', async () => {
    const scratch = scratchDir();
    const origin = path.join(scratch.dir, 'origin');
    const identifierOf = (dir: string): string => `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite`;
    try {
      // Blocks 0..4 flushed, then block 5 written (not flushed), then SIGKILL.
      const lastSize = 80;
      const child = startChild([identifierOf(origin), '0', '5', '4', String(lastSize)]);
      const unflushed = await child.waitFor('written');
      await kill(child);
      assert.equal(unflushed, 5);
      const log = path.join(origin, 'logs', readdirSync(path.join(origin, 'logs')).sort().at(-1) as string);
      const size = statSync(log).size;
      const recordLength = 16 + 'b5'.length + lastSize;
      const start = size - recordLength;
      assert.ok(start > 0);
      for (let cut = start; cut <= size; cut += 1) {
        const dir = path.join(scratch.dir, `cut-${cut}`);
        cpSync(origin, dir, { recursive: true });
        truncateSync(path.join(dir, 'logs', path.basename(log)), cut);
        const warnings: string[] = [];
        const backend = await openArchive(identifierOf(dir), { spawnOwn: false, onLog: (_level, text) => warnings.push(text) });
        try {
          for (let i = 0; i < 5; i += 1) await expectIntact(backend, `b${i}`);
          if (cut === size) {
            assert.ok(Buffer.from((await backend.get('b5')) as Uint8Array).equals(patternBytes(lastSize, 5)));
            assert.deepEqual(warnings, []);
          } else {
            assert.equal(await backend.get('b5'), null, `cut at ${cut}`);
            if (cut > start) assert.ok(warnings.some((w) => w.includes(`dropped ${cut - start} bytes`)), `cut at ${cut}: ${warnings.join('; ')}`);
            else assert.deepEqual(warnings, []);
            assert.equal(statSync(path.join(dir, 'logs', path.basename(log))).size, start, 'the torn tail is cut off');
          }
          await backend.put('after', Buffer.from('written after recovery'));
          await backend.flush();
          assert.equal(Buffer.from((await backend.get('after')) as Uint8Array).toString(), 'written after recovery');
          const report = await backend.admin('check', []);
          assert.equal((report.data as { ok: boolean }).ok, true, `cut at ${cut}: ${report.text}`);
        } finally {
          await backend.close();
        }
        rmSync(dir, { recursive: true, force: true });
      }

      // Now index block 5 (a reopen recovers it), and cut the log inside that indexed record:
      // its block answers corrupt, check names it, everything else works and new writes go to a new log.
      const indexed = await openArchive(identifierOf(origin), { spawnOwn: false, onLog: () => undefined });
      assert.ok(Buffer.from((await indexed.get('b5')) as Uint8Array).equals(patternBytes(lastSize, 5)));
      await indexed.close();
      for (let cut = start; cut < size; cut += cut < start + 20 ? 1 : 7) {
        const dir = path.join(scratch.dir, `indexed-cut-${cut}`);
        cpSync(origin, dir, { recursive: true });
        truncateSync(path.join(dir, 'logs', path.basename(log)), cut);
        const warnings: string[] = [];
        const backend = await openArchive(identifierOf(dir), { spawnOwn: false, onLog: (_level, text) => warnings.push(text) });
        try {
          assert.ok(warnings.some((w) => /cut from outside/.test(w)), warnings.join('; '));
          for (let i = 0; i < 5; i += 1) await expectIntact(backend, `b${i}`);
          await assert.rejects(backend.get('b5'), (err: unknown) => err instanceof BackendError && err.code === 'corrupt');
          await backend.put('after', Buffer.from('new log'));
          await backend.flush();
          assert.equal(Buffer.from((await backend.get('after')) as Uint8Array).toString(), 'new log');
          const report = await backend.admin('check', []);
          assert.match(report.text, /"b5"/);
        } finally {
          await backend.close();
        }
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      scratch.remove();
    }
  });
});
