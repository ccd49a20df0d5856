/**
 * Figures for the proxy backends:
 *
 *   node dist/bench/proxies.js [KEYS]   (default 2000)
 *
 * - cache: sequential `exists` over a slow link (a spawned fs store behind
 *   `backend-faulty --delay 2`, i.e. 2 ms a request): without a cache, with a
 *   cold cache (misses) and with a warm one (hits, answered locally).
 * - throttle: the rate achieved writing 8 MiB in 256 KiB blocks against the
 *   quota, sequential and pipelined.
 * - faulty: pipelined 4 KiB puts into memory, directly and through
 *   backend-faulty with nothing scheduled (the cost of the pass-through).
 *
 * Prints Markdown tables.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Backend } from '../src/backends/backend.js';
import { openArchive, ownCommandPath } from '../src/backends/open.js';

const keyCount = Number(process.argv[2] ?? 2000);
const quiet = { onLog: () => undefined };

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

async function sequentialExists(backend: Backend, keys: string[]): Promise<number> {
  return seconds(async () => {
    for (const key of keys) await backend.exists(key);
  });
}

async function cacheBench(dir: string): Promise<string[]> {
  const slow = `${process.execPath} ${ownCommandPath('backend-faulty')} --seed 1 --delay 2 'backend-fs fs ${dir}/archive'`;
  const keys = Array.from({ length: keyCount }, (_, i) => `${randomBytes(12).toString('hex')}${i}`);
  const filler = await openArchive(`backend-fs fs ${dir}/archive`, quiet);
  await Promise.all(keys.map((key) => filler.put(key, Buffer.from(key))));
  await filler.close();
  const direct = await openArchive(slow, quiet);
  const plain = await sequentialExists(direct, keys);
  await direct.close();
  const cached = await openArchive(`backend-cache ${dir}/cache.sqlite "${slow}"`, quiet);
  const cold = await sequentialExists(cached, keys);
  await cached.flush();
  const warm = await sequentialExists(cached, keys);
  await cached.close();
  const row = (what: string, s: number): string => `| ${what} | ${keyCount} | ${s.toFixed(2)} | ${Math.round(keyCount / s)} |`;
  return [
    '| sequential exists, 2 ms link | keys | seconds | exists/s |',
    '| --- | ---: | ---: | ---: |',
    row('no cache', plain),
    row('cache, cold (misses)', cold),
    row('cache, warm (hits)', warm),
  ];
}

async function throttleBench(): Promise<string[]> {
  const block = randomBytes(256 * 1024);
  const rows = ['| throttle --write | sequential MiB/s | pipelined MiB/s |', '| --- | ---: | ---: |'];
  for (const mib of [2, 4, 8]) {
    const run = async (pipelined: boolean): Promise<number> => {
      const backend = await openArchive(`backend-throttle --write ${mib}M 'backend-fs memory'`, quiet);
      const s = await seconds(async () => {
        if (pipelined) await Promise.all(Array.from({ length: 32 }, (_, i) => backend.put(`b${i}`, block)));
        else for (let i = 0; i < 32; i += 1) await backend.put(`b${i}`, block);
      });
      await backend.close();
      return 8 / s;
    };
    rows.push(`| ${mib} MiB/s | ${(await run(false)).toFixed(2)} | ${(await run(true)).toFixed(2)} |`);
  }
  return rows;
}

async function faultyBench(): Promise<string[]> {
  const block = randomBytes(4096);
  const count = 20_000;
  const run = async (identifier: string): Promise<number> => {
    const backend = await openArchive(identifier, quiet);
    const s = await seconds(() => Promise.all(Array.from({ length: count }, (_, i) => backend.put(`k${i}`, block))));
    await backend.close();
    return count / s;
  };
  const direct = await run('backend-fs memory');
  const faulty = await run("backend-faulty --seed 1 'backend-fs memory'");
  return [
    '| 4 KiB puts into memory, pipelined, in process | puts/s |',
    '| --- | ---: |',
    `| direct | ${Math.round(direct)} |`,
    `| through backend-faulty (nothing scheduled) | ${Math.round(faulty)} |`,
  ];
}

const dir = mkdtempSync(path.join(tmpdir(), 'cairn-bench-proxies-'));
try {
  for (const table of [await cacheBench(dir), await throttleBench(), await faultyBench()]) {
    process.stdout.write(`${table.join('\n')}\n\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
