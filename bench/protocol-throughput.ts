/**
 * Pipelined put and exists throughput of 4 KiB and 1 MiB blocks, in process
 * vs spawned (over the protocol), against backend-fs and memory.
 *
 *   node dist/bench/protocol-throughput.js [TOTAL-MiB-PER-RUN]   (default 256)
 *
 * Prints a Markdown table. Issue 2's target: spawned ≥ 80% of in-process for
 * 1 MiB puts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { pipelined } from './pipelined.js';

const totalMiB = Number(process.argv[2] ?? 256);
const WINDOW = 64;

interface Row {
  store: string;
  mode: string;
  blockSize: string;
  op: string;
  blocksPerSecond: number;
  mbPerSecond: number;
}

async function measure(store: string, identifier: (dir: string) => string, spawnOwn: boolean, size: number): Promise<Row[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-bench-'));
  const backend: Backend = await openArchive(identifier(dir), { spawnOwn, onLog: () => undefined });
  const count = Math.max(64, Math.floor((totalMiB * 1024 * 1024) / size));
  const blocks = Array.from({ length: 16 }, () => randomBytes(size));
  const keys = Array.from({ length: count }, (_, i) => `${randomBytes(16).toString('hex')}${i}`);
  const putSeconds = await pipelined(count, WINDOW, (i) => backend.put(keys[i] as string, blocks[i % blocks.length] as Buffer));
  await backend.flush();
  const existsSeconds = await pipelined(count, WINDOW, (i) => backend.exists(keys[i] as string));
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
  const label = size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`;
  const mode = spawnOwn ? 'spawned' : 'in process';
  return [
    { store, mode, blockSize: label, op: 'put', blocksPerSecond: count / putSeconds, mbPerSecond: (count * size) / putSeconds / 1e6 },
    { store, mode, blockSize: label, op: 'exists', blocksPerSecond: count / existsSeconds, mbPerSecond: Number.NaN },
  ];
}

const stores: Array<[string, (dir: string) => string]> = [
  ['memory', () => 'backend-fs memory'],
  ['fs', (dir) => `backend-fs fs ${dir}/archive`],
];

const rows: Row[] = [];
for (const [store, identifier] of stores) {
  for (const size of [4096, 1024 * 1024]) {
    for (const spawnOwn of [false, true]) rows.push(...(await measure(store, identifier, spawnOwn, size)));
  }
}

console.log(`pipelined, window ${WINDOW}, ~${totalMiB} MiB per put run, node ${process.version}\n`);
console.log('| store | block | op | in process blocks/s | spawned blocks/s | in process MB/s | spawned MB/s | spawned / in process |');
console.log('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const row of rows.filter((r) => r.mode === 'in process')) {
  const twin = rows.find((r) => r.mode === 'spawned' && r.store === row.store && r.blockSize === row.blockSize && r.op === row.op) as Row;
  const mb = (v: number): string => (Number.isNaN(v) ? '' : v.toFixed(0));
  console.log(`| ${row.store} | ${row.blockSize} | ${row.op} | ${row.blocksPerSecond.toFixed(0)} | ${twin.blocksPerSecond.toFixed(0)} | ${mb(row.mbPerSecond)} | ${mb(twin.mbPerSecond)} | ${(twin.blocksPerSecond / row.blocksPerSecond * 100).toFixed(0)}% |`);
}
