/**
 * The splitlog store against fs: pipelined put and get throughput of 1 MiB
 * blocks, and splitlog's reindex time per GB of logs.
 *
 *   node dist/bench/splitlog.js [TOTAL-MiB] [DIR]    (default 512 MiB under the system temp dir)
 *
 * Puts are timed up to the end of a final flush (so fsyncs count); gets run
 * after a close and reopen (the page cache is warm: this measures the store,
 * not the disk). Prints a Markdown table.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { pipelined } from './pipelined.js';

const totalMiB = Number(process.argv[2] ?? 512);
const parent = process.argv[3] ?? tmpdir();
const WINDOW = 64;
const SIZE = 1024 * 1024;

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

interface Result {
  store: string;
  putMBs: number;
  getMBs: number;
  reindexSecondsPerGB?: number;
}

async function measure(store: string, identifier: (dir: string) => string): Promise<Result> {
  const dir = mkdtempSync(path.join(parent, 'cairn-bench-splitlog-'));
  try {
    const open = (): Promise<Backend> => openArchive(identifier(dir), { spawnOwn: false, onLog: () => undefined });
    const count = Math.max(16, Math.floor((totalMiB * 1024 * 1024) / SIZE));
    const blocks = Array.from({ length: 16 }, () => randomBytes(SIZE));
    const keys = Array.from({ length: count }, (_, i) => `${randomBytes(16).toString('hex')}${i}`);
    let backend = await open();
    let started = process.hrtime.bigint();
    await pipelined(count, WINDOW, (i) => backend.put(keys[i] as string, blocks[i % blocks.length] as Buffer));
    await backend.flush();
    const putSeconds = seconds(started);
    await backend.close();
    backend = await open();
    started = process.hrtime.bigint();
    let read = 0;
    await pipelined(count, WINDOW, async (i) => {
      const data = (await backend.get(keys[i] as string)) as Uint8Array;
      read += data.byteLength;
    });
    const getSeconds = seconds(started);
    if (read !== count * SIZE) throw new Error(`read ${read} bytes, expected ${count * SIZE}`);
    const result: Result = { store, putMBs: (count * SIZE) / putSeconds / 1e6, getMBs: (count * SIZE) / getSeconds / 1e6 };
    if (store === 'splitlog') {
      started = process.hrtime.bigint();
      const report = await backend.admin('reindex', []);
      const reindexSeconds = seconds(started);
      const bytes = (report.data as { bytes: number }).bytes;
      result.reindexSecondsPerGB = reindexSeconds / (bytes / 1e9);
    }
    await backend.close();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [
  await measure('splitlog', (dir) => `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite`),
  await measure('fs', (dir) => `backend-fs fs ${dir}/archive`),
];

console.log(`1 MiB blocks, pipelined (window ${WINDOW}), ${totalMiB} MiB per run, in process, under ${parent}, node ${process.version}\n`);
console.log('| store | put MB/s (to flush) | get MB/s | reindex s/GB |');
console.log('| --- | ---: | ---: | ---: |');
for (const r of results) {
  console.log(`| ${r.store} | ${r.putMBs.toFixed(0)} | ${r.getMBs.toFixed(0)} | ${r.reindexSecondsPerGB === undefined ? '' : r.reindexSecondsPerGB.toFixed(2)} |`);
}
