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

/** Runs a child that makes garbage with the keeper started (and never stopped); the heap before and 200 ms after. */
function heapAroundKeeper(options: string): { before: number; after: number } {
  const keeper = new URL('../src/cli/cairn/memory-keeper.js', import.meta.url).href;
  const script = `
    const { keepMemoryDown } = await import(${JSON.stringify(keeper)});
    keepMemoryDown(${options});
    let garbage = [];
    for (let i = 0; i < 400000; i += 1) garbage.push({ i, s: 'x'.repeat(40) + i });
    garbage = null;
    const before = process.memoryUsage().heapUsed;
    await new Promise((resolve) => setTimeout(resolve, 200));
    console.log(JSON.stringify({ before, after: process.memoryUsage().heapUsed }));
  `;
  const started = Date.now();
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.status, 0, child.stderr);
  assert.ok(Date.now() - started < 15_000, 'the child exited by itself');
  return JSON.parse(child.stdout) as { before: number; after: number };
}

test('keepMemoryDown collects garbage on its timer above its threshold, and the timer does not keep the process alive', () => {
  const { before, after } = heapAroundKeeper('{ aboveBytes: 0, checkMs: 20, spacingMs: 20 }');
  assert.ok(after < before / 2, `heap ${before} bytes before the keeper ran, ${after} after`);
});

test('keepMemoryDown does nothing while the resident size is under its threshold', () => {
  const { before, after } = heapAroundKeeper('{ aboveBytes: 64 * 1024 ** 3, checkMs: 20, spacingMs: 20 }');
  assert.ok(after > before * 0.9, `heap ${before} bytes before, ${after} after: the keeper collected under its threshold`);
});
