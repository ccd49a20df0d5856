/**
 * backend-throttle, with real timing on generous bounds (the machine may be
 * loaded): quotas hold, serving time counts, control requests pass at once.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { BackendError } from '../src/backends/errors.js';
import { UsageError } from '../src/backends/factory.js';
import { parseFaultArgs } from '../src/backends/faulty/fault-schedule.js';
import { FaultyBackend } from '../src/backends/faulty/faulty-backend.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { openArchive } from '../src/backends/open.js';
import { throttleFactory } from '../src/backends/throttle/factory.js';
import { ThrottleBackend } from '../src/backends/throttle/throttle-backend.js';
import { patternBytes } from './support/scratch.js';

const MiB = 1024 * 1024;

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

describe('backend-throttle', () => {
  it('8 MB written at 2 MB/s takes about 4 s, whether sent one by one or pipelined, in process or spawned', async () => {
    const block = patternBytes(MiB, 1);
    const sequential = async (): Promise<number> => {
      const throttle = new ThrottleBackend(new MemoryBackend(), { write: 2 * MiB });
      const elapsed = await seconds(async () => {
        for (let i = 0; i < 8; i += 1) await throttle.put(`s${i}`, block);
      });
      await throttle.close();
      return elapsed;
    };
    const pipelined = async (): Promise<number> => {
      const throttle = await openArchive("backend-throttle --write 2MB/s 'backend-fs memory'", { spawnOwn: true, onLog: () => undefined });
      const elapsed = await seconds(() => Promise.all(Array.from({ length: 8 }, (_, i) => throttle.put(`p${i}`, block))));
      await throttle.close();
      return elapsed;
    };
    const [one, many] = await Promise.all([sequential(), pipelined()]);
    assert.ok(one >= 3 && one <= 8, `sequential: ${one.toFixed(2)} s`);
    assert.ok(many >= 3 && many <= 8, `pipelined, spawned: ${many.toFixed(2)} s`);
  });

  it('4 MB read at 2 MB/s takes about 2 s', async () => {
    const store = new MemoryStore();
    const inner = new MemoryBackend(store);
    for (let i = 0; i < 8; i += 1) await inner.put(`r${i}`, patternBytes(MiB / 2, i));
    const throttle = new ThrottleBackend(inner, { read: 2 * MiB });
    const elapsed = await seconds(async () => {
      for (let i = 0; i < 8; i += 1) assert.equal((await throttle.get(`r${i}`))?.byteLength, MiB / 2);
    });
    assert.ok(elapsed >= 1.5 && elapsed <= 5, `${elapsed.toFixed(2)} s`);
  });

  it('the time the inner archive spends serving counts towards the quota', async () => {
    // Each 512 KiB put has a quota of 0.25 s at 2 MiB/s, and the inner archive takes 0.3 s to serve it:
    // four puts take about 4 x 0.3 s, not 4 x 0.55 s.
    const slow = new FaultyBackend(new MemoryBackend(), parseFaultArgs(['--delay', '300:put', '--seed', '1'], {}).schedule);
    const throttle = new ThrottleBackend(slow, { write: 2 * MiB });
    const elapsed = await seconds(async () => {
      for (let i = 0; i < 4; i += 1) await throttle.put(`d${i}`, new Uint8Array(MiB / 2));
    });
    assert.ok(elapsed >= 1.15 && elapsed < 1.9, `${elapsed.toFixed(2)} s`);
  });

  it('the request quota spaces block requests: 20 exists at 10 per second take about 2 s', async () => {
    const throttle = new ThrottleBackend(new MemoryBackend(), { ops: 10 });
    const elapsed = await seconds(() => Promise.all(Array.from({ length: 20 }, (_, i) => throttle.exists(`e${i}`))));
    assert.ok(elapsed >= 1.7 && elapsed <= 5, `${elapsed.toFixed(2)} s`);
  });

  it('tags, locks and flush are not held behind bulk data', async () => {
    const throttle = new ThrottleBackend(new MemoryBackend(), { write: MiB, read: MiB });
    const bulk = Promise.all(Array.from({ length: 2 }, (_, i) => throttle.put(`b${i}`, new Uint8Array(MiB))));
    const control = await seconds(async () => {
      await throttle.setTag('t', Buffer.from('v'));
      assert.equal(Buffer.from((await throttle.getTag('t')) as Uint8Array).toString(), 'v');
      assert.equal(await throttle.lockTag('t', 'me', 60), true);
      assert.equal(await throttle.tagLocked('t'), 'me');
      await throttle.unlockTag('t', 'me');
      assert.deepEqual(await throttle.listTags(), ['t']);
      await throttle.flush();
    });
    const total = await seconds(() => bulk);
    assert.ok(control < 0.5, `control requests took ${control.toFixed(2)} s while 2 MB queued at 1 MB/s`);
    assert.ok(total > 1.2, `the bulk data was still paced (${total.toFixed(2)} s more)`);
  });

  it('admin rates shows the quotas and set-rate changes them live', async () => {
    const throttle = new ThrottleBackend(new MemoryBackend(), { write: 256 * 1024 });
    assert.match((await throttle.admin('rates', [])).text, /write: +256 KiB\/s[\s\S]*read: +unlimited|read: +unlimited[\s\S]*write: +256 KiB\/s/);
    const first = await seconds(() => throttle.put('slow', new Uint8Array(128 * 1024)));
    assert.ok(first >= 0.4, `${first.toFixed(2)} s at 256 KiB/s`);
    await throttle.admin('set-rate', ['write', 'unlimited']);
    await throttle.admin('set-rate', ['ops', '500/s']);
    await throttle.admin('set-rate', ['read', '10M']);
    assert.deepEqual(throttle.rates, { read: 10 * MiB, write: 0, ops: 500 });
    const fast = await seconds(() => throttle.put('fast', new Uint8Array(MiB)));
    assert.ok(fast < 0.3, `${fast.toFixed(2)} s once unlimited`);
    for (const args of [['write'], ['speed', '1M'], ['write', 'fast']]) {
      await assert.rejects(throttle.admin('set-rate', args), (err: unknown) => err instanceof BackendError && err.code === 'badRequest');
    }
    const help = await throttle.admin('help', []);
    assert.match(help.text, /throttle admin commands:[\s\S]*set-rate[\s\S]*memory admin commands:/);
    assert.deepEqual((await throttle.admin('stats', [])).data, { blocks: 2, bytes: 128 * 1024 + MiB, tags: 0 });
    await throttle.close();
  });

  it('the command line takes rates with units and one inner identifier', () => {
    assert.deepEqual(throttleFactory.parseArgs(['--read', '512k', '--write=2MB/s', '--ops', '20', 'backend-fs fs /a']), {
      rates: { read: 512 * 1024, write: 2 * MiB, ops: 20 }, inner: 'backend-fs fs /a',
    });
    assert.deepEqual(throttleFactory.parseArgs(['backend-fs memory']).rates, { read: 0, write: 0, ops: 0 });
    assert.equal(throttleFactory.parseArgs(['--write', '1.5 MiB/s', 'x']).rates.write, 1.5 * MiB);
    assert.throws(() => throttleFactory.parseArgs(['--write', 'fast', 'x']), (err: unknown) => err instanceof UsageError && /write rate/.test(err.message));
    assert.throws(() => throttleFactory.parseArgs(['--write', '1M']), /inner archive identifier/);
    assert.throws(() => throttleFactory.parseArgs(['--write', '1M', 'backend-fs', 'memory']), /inner archive identifier/);
    assert.throws(() => throttleFactory.parseArgs(['--speed', '1M', 'x']), /unknown option --speed/);
    assert.throws(() => throttleFactory.parseArgs(['--write', '1M', '--write', '2M', 'x']), /given twice/);
  });
});
