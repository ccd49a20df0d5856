/**
 * Crash tests of the splitlog store with real processes: a child writes and
 * flushes blocks and is killed with SIGKILL at many points; reopening must
 * lose no flushed block and return only intact blocks. A log cut at every
 * byte offset of its last (unflushed) record recovers cleanly.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';
import { blockSizeOf } from './support/splitlog-child.js';

const CHILD = fileURLToPath(new URL('./support/splitlog-child.js', import.meta.url));

interface Child {
  process: ChildProcess;
  /** Resolves with the first stdout line matching `pattern`'s prefix. */
  waitFor(prefix: string, count?: number): Promise<number>;
  lastFlushed(): number;
}

function startChild(args: string[]): Child {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buffered = '';
  let stderr = '';
  let flushed = -1;
  const seen: Array<{ prefix: string; value: number }> = [];
  const waiters: Array<() => void> = [];
  child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    const lines = buffered.split('\n');
    buffered = lines.pop() as string;
    for (const line of lines) {
      const [prefix, value] = line.split(' ');
      seen.push({ prefix: prefix as string, value: Number(value) });
      if (prefix === 'flushed') flushed = Number(value);
    }
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    lastFlushed: () => flushed,
    async waitFor(prefix, count = 1) {
      for (;;) {
        const hits = seen.filter((s) => s.prefix === prefix);
        if (hits.length >= count) return (hits[count - 1] as { value: number }).value;
        if (child.exitCode !== null) throw new Error(`child exited early: ${stderr}`);
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), exited]);
      }
    },
  };
}

async function kill(child: Child): Promise<void> {
  const done = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGKILL');
  await done;
}

async function expectIntact(backend: Backend, key: string): Promise<void> {
  const i = Number(key.slice(1));
  const data = await backend.get(key);
  assert.ok(data !== null, `${key} is missing`);
  assert.ok(Buffer.from(data).equals(patternBytes(blockSizeOf(i), i)), `${key} is not intact`);
}

async function allKeys(backend: Backend): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | null = null;
  do {
    const page: [string[], string | null] = await backend.listBlocks(cursor, 1000);
    keys.push(...page[0]);
    cursor = page[1];
  } while (cursor !== null);
  return keys;
}

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

  it('a log cut at every byte offset of its last, unflushed record recovers cleanly', async () => {
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
    } finally {
      scratch.remove();
    }
  });
});
