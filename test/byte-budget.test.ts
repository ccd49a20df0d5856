/** ByteBudget bounds the bytes a restore's readers hold at once, in order of asking, and never blocks a lone big block. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteBudget } from '../src/archive/byte-budget.js';

const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('takes wait while the budget is full and are granted in order of asking as bytes come back', async () => {
  const budget = new ByteBudget(100);
  const order: string[] = [];
  const first = await budget.take(60);
  const second = await budget.take(40);
  const third = budget.take(50).then((release) => { order.push('third'); return release; });
  // Asked after the third: even though it would fit once 10 bytes are back, it waits its turn.
  const fourth = budget.take(10).then((release) => { order.push('fourth'); return release; });
  await settled();
  assert.deepEqual(order, [], 'nothing fits in a full budget');
  first();
  await settled();
  assert.deepEqual(order, ['third', 'fourth'], 'both fit once 60 bytes are back, granted in order');
  second();
  (await third)();
  (await fourth)();
  // Everything back: a whole budget's worth fits again at once.
  (await budget.take(100))();
});

test('a block larger than the whole budget is granted when nothing else is held, and a release counts once', async () => {
  const budget = new ByteBudget(10);
  const small = await budget.take(5);
  let granted = false;
  const big = budget.take(1000).then((release) => { granted = true; return release; });
  await settled();
  assert.equal(granted, false);
  small();
  small();
  await settled();
  assert.equal(granted, true);
  const release = await big;
  let next = false;
  const after = budget.take(1).then((r) => { next = true; return r; });
  await settled();
  assert.equal(next, false, 'the big block holds the budget until released');
  release();
  (await after)();
  assert.equal(next, true);
});
