/**
 * backend-faulty: each fault happens exactly as scheduled. The kill and the
 * environment variables are exercised with real spawned processes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { BackendError } from '../src/backends/errors.js';
import { UsageError } from '../src/backends/factory.js';
import { parseFaultArgs } from '../src/backends/faulty/fault-schedule.js';
import { faultyFactory } from '../src/backends/faulty/factory.js';
import { FaultyBackend } from '../src/backends/faulty/faulty-backend.js';
import { FsBackend } from '../src/backends/fs/fs-backend.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-faulty-');
after(() => scratch.remove());

function faulty(store: MemoryStore, ...options: string[]): FaultyBackend {
  return new FaultyBackend(new MemoryBackend(store), parseFaultArgs(options, {}).schedule);
}

/** Settles each call in turn and names the outcome: "ok" or the error code. */
async function outcomes(calls: Array<() => Promise<unknown>>): Promise<string[]> {
  const results: string[] = [];
  for (const call of calls) {
    try {
      await call();
      results.push('ok');
    } catch (err) {
      results.push(err instanceof BackendError ? err.code : `not a BackendError: ${String(err)}`);
    }
  }
  return results;
}

function logLines(file: string): Array<Record<string, unknown>> {
  return readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

function differingBytes(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.byteLength; i += 1) if (a[i] !== b[i]) n += 1;
  return n;
}

describe('backend-faulty', () => {
  it('--fail-op N:CODE fails exactly the Nth operation, before it reaches the inner archive', async () => {
    const store = new MemoryStore();
    const backend = faulty(store, '--fail-op', '3:unavailable', '--seed', '1');
    const results = await outcomes([
      () => backend.put('a', Buffer.from('a')),
      () => backend.exists('a'),
      () => backend.put('b', Buffer.from('b')),
      () => backend.put('c', Buffer.from('c')),
    ]);
    assert.deepEqual(results, ['ok', 'ok', 'unavailable', 'ok']);
    assert.deepEqual([...store.blocks.keys()].sort(), ['a', 'c']);
  });

  it('--fail-op N:OP:CODE counts only that operation, and :after lets the inner archive act first', async () => {
    const store = new MemoryStore();
    const backend = faulty(store, '--fail-op', '2:put:conflict', '--fail-op', '1:setTag:internal:after', '--seed', '1');
    const results = await outcomes([
      () => backend.get('x'),
      () => backend.put('p1', Buffer.from('1')),
      () => backend.get('p1'),
      () => backend.put('p2', Buffer.from('2')),
      () => backend.put('p3', Buffer.from('3')),
      () => backend.setTag('t', Buffer.from('v')),
    ]);
    assert.deepEqual(results, ['ok', 'ok', 'ok', 'conflict', 'ok', 'internal']);
    assert.deepEqual([...store.blocks.keys()].sort(), ['p1', 'p3']);
    assert.equal(Buffer.from(store.tags.get('t') as Uint8Array).toString(), 'v', 'the tag was set though its answer failed');
  });

  it('--fail-from N:OP:CODE fails that operation from the Nth on (a dying store)', async () => {
    const store = new MemoryStore();
    store.blocks.set('k', Buffer.from('k'));
    const backend = faulty(store, '--fail-from', '3:get:unavailable', '--seed', '1');
    const calls = Array.from({ length: 5 }, () => () => backend.get('k'));
    assert.deepEqual(await outcomes([...calls, () => backend.exists('k')]), ['ok', 'ok', 'unavailable', 'unavailable', 'unavailable', 'ok']);
  });

  it('--delay MS[:OP] holds the chosen operations', async () => {
    const backend = faulty(new MemoryStore(), '--delay', '300:put', '--seed', '1');
    let start = performance.now();
    await backend.put('slow', Buffer.from('x'));
    assert.ok(performance.now() - start >= 295, 'put delayed');
    start = performance.now();
    await backend.get('slow');
    assert.ok(performance.now() - start < 250, 'get not delayed');
  });

  it('--corrupt-get N flips one byte of exactly the Nth get that returns data, leaving the store intact', async () => {
    const store = new MemoryStore();
    const data = patternBytes(4096, 5);
    store.blocks.set('k', data);
    const backend = faulty(store, '--corrupt-get', '2', '--seed', '7');
    assert.equal(await backend.get('absent'), null, 'a get with no data is not counted');
    const reads = [await backend.get('k'), await backend.get('k'), await backend.get('k')] as Uint8Array[];
    assert.deepEqual(reads.map((r) => differingBytes(r, data)), [0, 1, 0]);
    assert.equal(differingBytes(store.blocks.get('k') as Uint8Array, data), 0);
  });

  it('--corrupt-tag N flips one byte of the Nth getTag that returns data', async () => {
    const store = new MemoryStore();
    store.tags.set('t', Buffer.from('tag value'));
    const backend = faulty(store, '--corrupt-tag', '1', '--seed', '7');
    const first = (await backend.getTag('t')) as Uint8Array;
    const second = (await backend.getTag('t')) as Uint8Array;
    assert.equal(differingBytes(first, Buffer.from('tag value')), 1);
    assert.equal(differingBytes(second, Buffer.from('tag value')), 0);
  });

  it('--corrupt-rate FRACTION corrupts returned data at that rate, the same way for the same seed', async () => {
    const store = new MemoryStore();
    const data = patternBytes(1000, 2);
    store.blocks.set('k', data);
    const pattern = async (seed: string): Promise<number[]> => {
      const backend = faulty(store, '--corrupt-rate', '0.5', '--seed', seed);
      const reads: number[] = [];
      for (let i = 0; i < 40; i += 1) reads.push(differingBytes((await backend.get('k')) as Uint8Array, data));
      return reads;
    };
    const one = await pattern('11');
    assert.deepEqual(await pattern('11'), one);
    const corrupted = one.filter((n) => n === 1).length;
    assert.ok(corrupted >= 10 && corrupted <= 30, `${corrupted} of 40`);
    assert.ok(one.every((n) => n === 0 || n === 1));
    const always = faulty(store, '--corrupt-rate', '1', '--seed', '3');
    assert.equal(differingBytes((await always.get('k')) as Uint8Array, data), 1);
  });

  it('--drop-writes FRACTION acknowledges puts it never stores, the same ones for the same seed', async () => {
    const run = async (seed: string): Promise<string[]> => {
      const store = new MemoryStore();
      const backend = faulty(store, '--drop-writes', '0.3', '--seed', seed);
      const keys = Array.from({ length: 50 }, (_, i) => `w${i}`);
      for (const key of keys) await backend.put(key, Buffer.from(key));
      return keys.filter((key) => !store.blocks.has(key));
    };
    const dropped = await run('42');
    assert.deepEqual(await run('42'), dropped);
    assert.ok(dropped.length >= 5 && dropped.length <= 30, `${dropped.length} of 50 dropped`);
    assert.notDeepEqual(await run('43'), dropped);
    const strict = faulty(new MemoryStore(), '--drop-writes', '1', '--seed', '1');
    assert.deepEqual(await outcomes([() => strict.put('../bad', Buffer.from('x')), () => strict.put('fine', Buffer.from('x'))]), ['badRequest', 'ok']);
    const tags = new MemoryStore();
    const tagDropper = faulty(tags, '--drop-writes', '1:setTag', '--seed', '1');
    await tagDropper.setTag('t', Buffer.from('lost'));
    await tagDropper.put('kept', Buffer.from('x'));
    assert.equal(tags.tags.has('t'), false);
    assert.equal(tags.blocks.has('kept'), true);
  });

  it('--log FILE writes one JSON line per operation with its number, result and faults', async () => {
    const file = `${scratch.dir}/ops.log`;
    const backend = faulty(new MemoryStore(), '--log', file, '--fail-op', '2:readOnly', '--seed', '5');
    await backend.put('k', Buffer.from('abc'));
    await backend.setTag('t', Buffer.from('v')).catch(() => undefined);
    await backend.admin('info', []);
    await backend.close();
    const lines = logLines(file);
    assert.deepEqual(lines.map((l) => l.event ?? `${String(l.n)} ${String(l.op)} ${String(l.result)}`), ['start', '1 put ok', '2 setTag error', 'close']);
    assert.equal(lines[0]?.seed, 5);
    assert.deepEqual({ key: lines[1]?.key, bytes: lines[1]?.bytes }, { key: 'k', bytes: 3 });
    assert.deepEqual({ code: lines[2]?.code, faults: lines[2]?.faults }, { code: 'readOnly', faults: ['fail readOnly'] });
  });

  it('--kill-after N lets N operations through, then SIGKILLs its process at the next one (real process)', async () => {
    const dir = `${scratch.dir}/killed`;
    const log = `${scratch.dir}/killed.log`;
    const backend = await openArchive(`backend-faulty --kill-after 3 --log ${log} 'backend-fs fs ${dir}'`, { spawnOwn: true, stderr: null, onLog: () => undefined });
    const results = await outcomes([
      () => backend.put('one', Buffer.from('1')),
      () => backend.put('two', Buffer.from('2')),
      () => backend.put('three', Buffer.from('3')),
      () => backend.put('four', Buffer.from('4')),
      () => backend.exists('one'),
    ]);
    assert.deepEqual(results, ['ok', 'ok', 'ok', 'unavailable', 'unavailable']);
    await backend.close().catch(() => undefined);
    assert.deepEqual(logLines(log).map((l) => l.event ?? l.result), ['start', 'ok', 'ok', 'ok', 'killed'], 'no close: the process died');
    const fs = await FsBackend.open(dir);
    const [keys] = await fs.listBlocks(null, 100);
    assert.deepEqual([...keys].sort(), ['one', 'three', 'two']);
    await fs.close();
  });

  it('CAIRN_FAULTY_* variables schedule faults in a spawned backend-faulty (kill after 1 put, fail the first get)', async () => {
    const saved = { ...process.env };
    process.env.CAIRN_FAULTY_KILL_AFTER = '1:put';
    process.env.CAIRN_FAULTY_FAIL_OP = '1:get:corrupt';
    let backend: Backend;
    try {
      backend = await openArchive("backend-faulty 'backend-fs memory'", { spawnOwn: true, stderr: null, onLog: () => undefined });
    } finally {
      process.env = saved;
    }
    const results = await outcomes([
      () => backend.put('a', Buffer.from('a')),
      () => backend.get('a'),
      () => backend.get('a'),
      () => backend.put('b', Buffer.from('b')),
    ]);
    assert.deepEqual(results, ['ok', 'corrupt', 'ok', 'unavailable']);
    await backend.close().catch(() => undefined);
  });

  it('options replace the variable of the same name; lists in variables are comma-separated', () => {
    const env = { CAIRN_FAULTY_FAIL_OP: '1:put:readOnly, 3:internal', CAIRN_FAULTY_DELAY: '5', CAIRN_FAULTY_SEED: '9' };
    const fromEnv = parseFaultArgs(['inner'], env).schedule;
    assert.deepEqual(fromEnv.failOps, [
      { nth: 1, op: 'put', code: 'readOnly', after: false },
      { nth: 3, op: null, code: 'internal', after: false },
    ]);
    assert.deepEqual(fromEnv.delays, [{ ms: 5, op: null }]);
    assert.equal(fromEnv.seed, 9);
    const overridden = parseFaultArgs(['--fail-op', '2:unavailable', '--seed', '4', 'inner'], env).schedule;
    assert.deepEqual(overridden.failOps, [{ nth: 2, op: null, code: 'unavailable', after: false }]);
    assert.equal(overridden.seed, 4);
    assert.deepEqual(overridden.delays, [{ ms: 5, op: null }]);
  });

  it('schedule mistakes are usage errors that say what is expected', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--fail-op', '3:put', 'x'], /unknown error code "put"/],
      [['--fail-op', '0:internal', 'x'], /counted from 1/],
      [['--fail-op', '1:write:internal', 'x'], /unknown operation "write"/],
      [['--fail-from', '1:internal:after', 'x'], /--fail-from takes N\[:OP\]:CODE/],
      [['--kill-after', 'soon', 'x'], /--kill-after needs a non-negative integer/],
      [['--drop-writes', '1.5', 'x'], /fraction from 0 to 1/],
      [['--drop-writes', '0.5:get', 'x'], /drops put or setTag/],
      [['--corrupt-rate', '-1', 'x'], /non-negative number/],
      [['--frobnicate', '1', 'x'], /unknown option --frobnicate/],
      [['--seed', '1'], /inner archive identifier/],
    ];
    for (const [argv, message] of bad) {
      assert.throws(() => faultyFactory.parseArgs(argv), (err: unknown) => err instanceof UsageError && message.test(err.message), argv.join(' '));
    }
  });

  it('admin info shows the schedule and what was injected, then the inner archive; other commands reach it', async () => {
    const backend = faulty(new MemoryStore(), '--fail-op', '1:internal', '--seed', '3');
    await backend.put('k', Buffer.from('k')).catch(() => undefined);
    const info = await backend.admin('info', []);
    const data = info.data as { seed: number; faults: string; operations: number; failed: number; inner: unknown };
    assert.equal(data.seed, 3);
    assert.equal(data.faults, '--fail-op 1:internal');
    assert.equal(data.operations, 1);
    assert.equal(data.failed, 1);
    assert.match(info.text, /inner archive \(memory\)/);
    assert.deepEqual((await backend.admin('stats', [])).data, { blocks: 0, bytes: 0, tags: 0 });
    assert.equal((await backend.admin('info', [])).data !== null, true);
    assert.equal(((await backend.admin('info', [])).data as { operations: number }).operations, 1, 'admin is never counted');
  });
});

