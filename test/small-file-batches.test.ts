import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackendError } from '../src/backends/errors.js';
import type { SmallFile, SmallFileRead } from '../src/archive/block-engine.js';
import { SmallFileBatches } from '../src/archive/small-file-batches.js';

/** A batch reader the test answers by hand: it records each batch and returns its promise's controls. */
function handReader() {
  const batches: Array<{ files: SmallFile[]; answer(reads: SmallFileRead[]): void; fail(err: unknown): void }> = [];
  const read = (files: SmallFile[]) => new Promise<SmallFileRead[]>((resolve, reject) => batches.push({ files, answer: resolve, fail: reject }));
  return { batches, read };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** A few rounds of microtasks, within this turn of the event loop (a batch waits for `room` before it goes). */
const ticks = async (): Promise<void> => {
  for (let i = 0; i < 5; i += 1) await Promise.resolve();
};
const names = (files: SmallFile[]): string[] => files.map((f) => f.path.toString());
const ok = (f: SmallFile): SmallFileRead => ({ blocks: [{ key: f.path.toString(), size: f.size }], bytes: f.size });

test('small files go in batches: full ones at once (by count or by bytes, a file bigger than the byte limit alone), the rest after the turn of the event loop, at most two in flight, each file answered with its own read', async () => {
  const { batches, read } = handReader();
  const sb = new SmallFileBatches(read, async () => undefined, { files: 3, bytes: 100, inFlight: 2 });
  const results = new Map<string, Promise<SmallFileRead>>();
  const add = (name: string, size: number): void => {
    results.set(name, sb.read(Buffer.from(name), size));
  };
  add('a', 10);
  add('b', 10);
  await ticks();
  assert.equal(batches.length, 0, 'two of three: not sent yet');
  add('c', 10);
  await ticks();
  assert.deepEqual(batches.map((b) => names(b.files)), [['a', 'b', 'c']], 'full by count: sent at once');
  add('d', 60);
  add('e', 60);
  await ticks();
  assert.deepEqual(names((batches[1] as { files: SmallFile[] }).files), ['d'], 'full by bytes: what fits goes');
  add('f', 500);
  add('g', 1);
  await turn();
  assert.equal(batches.length, 2, 'two in flight: the rest waits');
  (batches[0] as { answer(r: SmallFileRead[]): void }).answer((batches[0] as { files: SmallFile[] }).files.map(ok));
  await turn();
  assert.deepEqual(names((batches[2] as { files: SmallFile[] }).files), ['e'], 'e alone: f is over the byte limit with it');
  (batches[1] as { answer(r: SmallFileRead[]): void }).answer((batches[1] as { files: SmallFile[] }).files.map(ok));
  await turn();
  assert.deepEqual(names((batches[3] as { files: SmallFile[] }).files), ['f'], 'a file over the byte limit goes alone');
  for (let i = 2; i < batches.length; i += 1) (batches[i] as { answer(r: SmallFileRead[]): void }).answer((batches[i] as { files: SmallFile[] }).files.map(ok));
  await turn();
  (batches[4] as { answer(r: SmallFileRead[]): void }).answer((batches[4] as { files: SmallFile[] }).files.map(ok));
  assert.deepEqual(batches.map((b) => names(b.files)), [['a', 'b', 'c'], ['d'], ['e'], ['f'], ['g']]);
  for (const [name, result] of results) assert.deepEqual(await result, { blocks: [{ key: name, size: name === 'f' ? 500 : name === 'd' || name === 'e' ? 60 : name === 'g' ? 1 : 10 }], bytes: name === 'f' ? 500 : name === 'd' || name === 'e' ? 60 : name === 'g' ? 1 : 10 });
});

test('a batch is sent only once the block writer has room, and a batch that fails, or comes back with the wrong number of answers, fails each of its files; later batches still go', async () => {
  const { batches, read } = handReader();
  let open: () => void = () => undefined;
  let room: Promise<void> = new Promise((resolve) => {
    open = resolve;
  });
  const sb = new SmallFileBatches(read, () => room, { files: 2, bytes: 1000, inFlight: 2 });
  const a = sb.read(Buffer.from('a'), 1);
  const b = sb.read(Buffer.from('b'), 1);
  await turn();
  assert.equal(batches.length, 0, 'no room: nothing sent');
  open();
  room = Promise.resolve();
  await turn();
  assert.equal(batches.length, 1);
  (batches[0] as { fail(err: unknown): void }).fail(new BackendError('internal', 'block worker exited (1)'));
  await assert.rejects(a, /block worker exited/);
  await assert.rejects(b, /block worker exited/);
  const c = sb.read(Buffer.from('c'), 1);
  const d = sb.read(Buffer.from('d'), 1);
  await turn();
  (batches[1] as { answer(r: SmallFileRead[]): void }).answer([{ grew: true }]);
  await assert.rejects(c, (err: unknown) => err instanceof BackendError && /2 small files came back with 1 answers/.test(err.message));
  await assert.rejects(d, BackendError);
  const e = sb.read(Buffer.from('e'), 1);
  await turn();
  (batches[2] as { answer(r: SmallFileRead[]): void }).answer([{ error: 'EACCES: permission denied' }]);
  assert.deepEqual(await e, { error: 'EACCES: permission denied' });
});
