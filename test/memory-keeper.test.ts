/**
 * The memory keeper of long snapshots (src/cli/cairn/memory-keeper.ts): the
 * native malloc_trim module is built by `npm ci` on Linux, and giving freed
 * memory back really lowers the resident size of this process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

function residentKiB(): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

test('cairn-malloc-trim is built and gives memory freed inside glibc arenas back to the system', { skip: process.platform !== 'linux' }, async () => {
  const { trim } = createRequire(import.meta.url)('cairn-malloc-trim') as { trim: () => boolean };
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // Mid-sized buffers (below glibc's mmap threshold), touched, then every other one freed:
  // the holes between those kept stay resident until trimmed.
  const kept: Buffer[] = [];
  let freed: Buffer[] = [];
  for (let i = 0; i < 2000; i += 1) (i % 2 === 0 ? kept : freed).push(Buffer.alloc(64 * 1024, 1));
  freed = [];
  // V8 frees array buffers on a background thread after a collection: give it time, twice.
  for (let round = 0; round < 2; round += 1) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  const before = residentKiB();
  assert.equal(trim(), true);
  const after = residentKiB();
  assert.equal(kept.length + freed.length, 1000);
  assert.ok(before - after >= 16 * 1024, `resident ${before} KiB before the trim, ${after} KiB after: expected at least 16 MiB less`);
});

test('cairn-malloc-trim discards the whole pages of a buffer kept for later: the resident size drops by them, the buffer reads zeros and takes writes again', { skip: process.platform !== 'linux' }, () => {
  const { discard } = createRequire(import.meta.url)('cairn-malloc-trim') as { discard: (buffer: Uint8Array) => number };
  const buffer = Buffer.allocUnsafeSlow(32 * 1024 * 1024);
  buffer.fill(7);
  const before = residentKiB();
  const given = discard(buffer);
  const after = residentKiB();
  assert.ok(given >= 32 * 1024 * 1024 - 8192 && given <= 32 * 1024 * 1024, `${given} bytes given back`);
  assert.ok(before - after >= 24 * 1024, `resident ${before} KiB before, ${after} KiB after: expected at least 24 MiB less`);
  assert.equal(buffer[buffer.length >> 1], 0);
  buffer.fill(9);
  assert.equal(buffer[buffer.length >> 1], 9);
  // Only whole pages inside it; nothing for what is not a byte array.
  assert.equal(discard(Buffer.alloc(100)), 0);
  assert.equal(discard('not a buffer' as unknown as Uint8Array), 0);
});

/**
 * Runs a child that leaves holes in glibc's arenas (mid-sized buffers, every
 * other one freed and collected), starts the keeper (never stopped), and
 * reports its resident size before and 300 ms after.
 */
function residentAroundKeeper(options: string): { before: number; after: number } {
  const keeper = new URL('../src/cli/cairn/memory-keeper.js', import.meta.url).href;
  const script = `
    const { readFileSync } = await import('node:fs');
    const resident = () => Number(/VmRSS:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
    const kept = [];
    let freed = [];
    for (let i = 0; i < 2000; i += 1) (i % 2 === 0 ? kept : freed).push(Buffer.alloc(64 * 1024, 1));
    freed = null;
    for (let round = 0; round < 2; round += 1) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const before = resident();
    const { keepMemoryDown } = await import(${JSON.stringify(keeper)});
    keepMemoryDown(${options});
    await new Promise((resolve) => setTimeout(resolve, 300));
    console.log(JSON.stringify({ before, after: resident(), kept: kept.length }));
  `;
  return runChild(['--expose-gc', '--input-type=module', '-e', script]) as { before: number; after: number };
}

/** Runs a node child (which must exit by itself) and parses the JSON it prints. */
function runChild(args: string[]): unknown {
  const started = Date.now();
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.status, 0, child.stderr);
  assert.ok(Date.now() - started < 15_000, 'the child exited by itself');
  return JSON.parse(child.stdout) as unknown;
}

test('keepMemoryDown trims on its timer above its threshold, and the timer does not keep the process alive', { skip: process.platform !== 'linux' }, () => {
  const { before, after } = residentAroundKeeper('{ aboveBytes: 0, checkMs: 20, spacingMs: 20 }');
  assert.ok(before - after >= 16 * 1024, `resident ${before} KiB before the keeper ran, ${after} KiB after: expected at least 16 MiB less`);
});

test('keepMemoryDown does not trim while the resident size is under its threshold', { skip: process.platform !== 'linux' }, () => {
  const { before, after } = residentAroundKeeper('{ aboveBytes: 64 * 1024 ** 3, checkMs: 20, spacingMs: 20 }');
  assert.ok(before - after < 8 * 1024, `resident ${before} KiB before, ${after} KiB after: the keeper trimmed under its threshold`);
});

/** The largest main heap of a child that churns garbage over a live set that grows, with the keeper started or not. */
function peakHeapWith(keeperStarted: boolean): number {
  const keeper = new URL('../src/cli/cairn/memory-keeper.js', import.meta.url).href;
  const script = `
    if (${keeperStarted}) (await import(${JSON.stringify(keeper)})).keepMemoryDown({ aboveBytes: 64 * 1024 ** 3 });
    const live = [];
    for (let i = 0; i < 100000; i += 1) live.push({ i, s: 'y'.repeat(30) + i });
    let peak = 0;
    for (let round = 0; round < 30; round += 1) {
      let garbage = [];
      for (let i = 0; i < 50000; i += 1) garbage.push({ i, s: 'x'.repeat(40) + i });
      if (round % 3 === 0) live.push(garbage.slice(0, 2000));
      garbage = null;
      peak = Math.max(peak, process.memoryUsage().heapTotal);
      await new Promise((resolve) => setImmediate(resolve));
    }
    console.log(JSON.stringify({ peak, live: live.length }));
  `;
  // Marking on this thread only: how far the heap grows then depends on the allocations, not on how soon
  // V8's marking threads get a core on a loaded machine.
  return (runChild(['--single-threaded-gc', '--input-type=module', '-e', script]) as { peak: number }).peak;
}

test('keepMemoryDown has V8 collect a heap that grew to twice what it kept, instead of letting it grow several times larger', () => {
  // Three runs each, summed: one run's peak moves by up to a sixth from the next's (two runs without the keeper
  // gave ratios of 0.83-1.03). The keeper's factor is 2; V8's own, chosen as it goes, came out about 1.4-1.9
  // times that here (single runs' ratios 0.54-0.72 over 16 runs, idle or under load).
  const runs = [0, 1, 2];
  const without = runs.reduce((sum) => sum + peakHeapWith(false), 0);
  const withKeeper = runs.reduce((sum) => sum + peakHeapWith(true), 0);
  assert.ok(withKeeper < without * 0.8, `peak heaps ${withKeeper} bytes with the keeper, ${without} without (3 runs each)`);
});
