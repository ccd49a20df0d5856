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

/** Issues an operation on `resources` that notes `label` in `done` when it runs (after `ms`, if given). */
function note(seq: Sequencer, done: string[], resources: string[] | 'all', label: string, ms = 0): Promise<void> {
  return seq.run(resources, async () => {
    if (ms > 0) await later(ms);
    done.push(label);
  });
}

test('operations on one resource run in the order issued; unrelated ones overlap', async () => {
  const seq = new Sequencer();
  const done: string[] = [];
  await Promise.all([note(seq, done, ['a'], 'a1', 30), note(seq, done, ['a'], 'a2'), note(seq, done, ['b'], 'b')]);
  assert.deepEqual(done, ['b', 'a1', 'a2']);
});

test('a whole-archive operation runs after every earlier one and before every later one', async () => {
  const seq = new Sequencer();
  const done: string[] = [];
  await Promise.all([note(seq, done, ['a'], 'a', 30), note(seq, done, 'all', 'all'), note(seq, done, ['b'], 'b')]);
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

test('a read of many resources is ordered with operations on each of them, not with other such reads', async () => {
  const seq = new Sequencer();
  const done: string[] = [];
  const read = (label: string, ms: number) => seq.runRead(['a', 'b', 'c'], async () => {
    await later(ms);
    done.push(label);
  });
  await Promise.all([
    note(seq, done, ['b'], 'write b before', 20),
    read('read 1', 30),
    read('read 2', 0),
    note(seq, done, ['c'], 'write c after'),
    note(seq, done, ['d'], 'write d'),
  ]);
  // 'read 2' does not wait for 'read 1'; both wait for the write before them; the write of c waits for both.
  assert.deepEqual(done, ['write d', 'write b before', 'read 2', 'read 1', 'write c after']);
});

test('a whole-archive operation waits for a read of many resources, and a failed read releases its resources', async () => {
  const seq = new Sequencer();
  const done: string[] = [];
  const failing = seq.runRead(['a'], async () => {
    await later(20);
    throw new Error('refused');
  });
  const all = note(seq, done, 'all', 'all');
  const after = note(seq, done, ['a'], 'a after');
  await assert.rejects(failing, /refused/);
  await Promise.all([all, after]);
  assert.deepEqual(done, ['all', 'a after']);
});
