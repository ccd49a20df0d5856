/**
 * The sequencer (protocol.md, "Requests and responses"): operations on the
 * same resource take effect in the order they were issued, unrelated ones
 * overlap, and a whole-archive operation runs after everything before it
 * and before everything after it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Sequencer } from '../src/backends/sequencer.js';

const later = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

test('operations on one resource run in the order issued; unrelated ones overlap', async () => {
  const seq = new Sequencer();
  const done: string[] = [];
  const first = seq.run(['a'], async () => {
    await later(30);
    done.push('a1');
  });
  const second = seq.run(['a'], async () => {
    done.push('a2');
  });
  const other = seq.run(['b'], async () => {
    done.push('b');
  });
  await Promise.all([first, second, other]);
  assert.deepEqual(done, ['b', 'a1', 'a2']);
});

test('a whole-archive operation runs after every earlier one and before every later one', async () => {
  const seq = new Sequencer();
  const done: string[] = [];
  const slow = seq.run(['a'], async () => {
    await later(30);
    done.push('a');
  });
  const barrier = seq.run('all', async () => {
    done.push('all');
  });
  const after = seq.run(['b'], async () => {
    done.push('b');
  });
  await Promise.all([slow, barrier, after]);
  assert.deepEqual(done, ['a', 'all', 'b']);
});

test('an operation that throws at once is a rejection, and the next one on its resource still runs', async () => {
  const seq = new Sequencer();
  const failing = seq.run(['a'], () => {
    throw new Error('refused');
  });
  await assert.rejects(failing, /refused/);
  assert.equal(await seq.run(['a'], async () => 'next'), 'next');
});
