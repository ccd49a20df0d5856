/**
 * The replicated backend: put throughput with two copies against one store,
 * and re-replication speed (and memory) after a member is unplugged.
 *
 *   node dist/bench/replicated.js [--mib N] [--small N] [--memory]
 *
 *   --mib N     MiB of 1 MiB blocks per put run (default 128)
 *   --small N   small blocks (100 bytes) for the re-replication run (default 20000)
 *   --memory    members are in-process `backend-fs memory` stores instead of
 *               fs directories (for very large --small runs: 1000000); the
 *               third member is then declared lost instead of unplugged
 *
 * Prints the figures as Markdown. RSS is of this process, which runs the
 * replicated backend and its members: what matters is how much it grows
 * while re-replicating (the members' own data is already there before).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { pipelined } from './pipelined.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { quoteArgument } from '../src/protocol/identifier.js';
import { ReplicatedBackend } from '../src/replicate/replicated-backend.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const MIB = option('--mib', 128);
const SMALL = option('--small', 20000);
const MEMORY = process.argv.includes('--memory');
const WINDOW = 32;
const quiet = { onLog: () => undefined };

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);

/** Memory members differ only in how their (equal) block size is written, so that their identifiers differ. */
const MEMORY_SIZES: Record<string, string> = { a: '16M', b: '16384k', c: '16777216' };

function memberIdentifier(dir: string, name: string): string {
  return MEMORY ? `backend-fs memory ${MEMORY_SIZES[name] ?? '16M'}` : `backend-fs fs ${quoteArgument(path.join(dir, name))}`;
}

/** The replicated backend in this process, with its members. */
async function replicated(dir: string, members: string[], trust: number): Promise<Backend> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const b = new OrderedBackend(ReplicatedBackend.open(path.join(dir, 'replica.sqlite'), {
    openArchive: (identifier) => openArchive(identifier, quiet),
    log: () => undefined,
  }));
  // A memory member starts empty each time it is opened: add it unopened, so the set's own connection gives it its tag.
  for (const m of members) await b.admin('add-member', [m, memberIdentifier(dir, m), String(trust), ...(MEMORY ? ['--offline'] : [])]);
  return b;
}

async function putRun(b: Backend, blocks: Buffer[]): Promise<number> {
  const seconds = await pipelined(blocks.length, WINDOW, (i) => b.put(`big${i}`, blocks[i] as Buffer));
  const flushStart = process.hrtime.bigint();
  await b.flush();
  return seconds + Number(process.hrtime.bigint() - flushStart) / 1e9;
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(tmpdir(), 'cairn-bench-replicated-'));
  const rows: string[] = ['| run | figure |', '| --- | --- |'];
  try {
    const blocks = Array.from({ length: MIB }, () => randomBytes(1024 * 1024));

    const kind = MEMORY ? 'memory' : 'fs';
    const single = await openArchive(MEMORY ? 'backend-fs memory' : `backend-fs fs ${quoteArgument(path.join(root, 'single'))}`, quiet);
    const singleSeconds = await putRun(single, blocks);
    await single.close();
    rows.push(`| put 1 MiB blocks, one ${kind} store | ${(MIB / singleSeconds).toFixed(1)} MB/s |`);

    const twoDir = path.join(root, 'two');
    const two = await replicated(twoDir, ['a', 'b'], 50);
    const twoSeconds = await putRun(two, blocks);
    await two.close();
    rows.push(`| put 1 MiB blocks, replicated: two copies (2 ${kind} members at 50%) | ${(MIB / twoSeconds).toFixed(1)} MB/s (${((singleSeconds / twoSeconds) * 100).toFixed(0)}% of one store) |`);
    blocks.length = 0;

    const small = Buffer.alloc(100, 7);
    const smallKey = (i: number): string => `s${String(i).padStart(8, '0')}`;
    const one = await openArchive(MEMORY ? 'backend-fs memory' : `backend-fs fs ${quoteArgument(path.join(root, 'one-small'))}`, quiet);
    const oneSeconds = await pipelined(SMALL, WINDOW, (i) => one.put(smallKey(i), small));
    await one.flush();
    await one.close();
    rows.push(`| put ${SMALL} blocks of 100 bytes, one ${kind} store | ${(SMALL / oneSeconds).toFixed(0)} blocks/s |`);

    const repDir = path.join(root, 'rep');
    const set = await replicated(repDir, ['a', 'b', 'c'], 50);
    const fillSeconds = await pipelined(SMALL, WINDOW, (i) => set.put(smallKey(i), small));
    await set.flush();
    rows.push(`| put ${SMALL} blocks of 100 bytes, 3 ${kind} members at 50% | ${(SMALL / fillSeconds).toFixed(0)} blocks/s |`);
    if (!MEMORY) {
      renameSync(path.join(repDir, 'c'), path.join(repDir, 'c.unplugged'));
      writeFileSync(path.join(repDir, 'c'), 'unplugged');
    }
    const rssBefore = process.memoryUsage().rss;
    peakRss = rssBefore;
    const started = process.hrtime.bigint();
    // "lost" forgets the member's placements, then re-replicates.
    const result = MEMORY ? await set.admin('lost', ['c']) : await set.admin('re-replicate', []);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const data = result.data as { checked: number; copied: number };
    rows.push(`| re-replicate after ${MEMORY ? '"lost"' : 'unplugging'} one of 3 members (${SMALL} blocks) | ${(data.checked / seconds).toFixed(0)} blocks checked/s, ${(data.copied / seconds).toFixed(0)} copies/s (${data.copied} copies in ${seconds.toFixed(1)} s) |`);
    rows.push(`| RSS during re-replicate | ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(peakRss / 2 ** 20).toFixed(0)} MiB peak (+${((peakRss - rssBefore) / 2 ** 20).toFixed(0)} MiB) |`);
    await set.close();
  } finally {
    clearInterval(sampler);
    rmSync(root, { recursive: true, force: true });
  }
  console.log(rows.join('\n'));
}

await main();
