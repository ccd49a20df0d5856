/**
 * The backend conformance suite (conventions.md, 7): one set of behaviour
 * tests, each named after the sentence of protocol.md it checks, run against
 * every store and proxy, in process and over the wire.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '../../src/backends/backend.js';
import { BackendError, type ErrorCode } from '../../src/backends/errors.js';
import { patternBytes, sleep } from '../support/scratch.js';
import type { ConformanceFixture, FixtureFactory } from './fixture.js';

interface TestContext {
  backend: Backend;
  /** Opens another client of the same archive (closed after the test). */
  open(): Promise<Backend>;
  fixture: ConformanceFixture;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof BackendError, `expected a BackendError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return true;
  });
}

const BAD_KEYS: unknown[] = ['', '.hidden', '-dash', 'a/b', '../up', 'a b', 'k'.repeat(129), 'ü', 'a\0b', 42, null];
const BAD_TAGS: unknown[] = ['', 'a/b', '../up', 'a b', 't'.repeat(129), 'tag\n', 7];

async function listAll(backend: Backend, limit: number): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 10_000; pages += 1) {
    const [page, next]: [string[], string | null] = await backend.listBlocks(cursor, limit);
    assert.ok(page.length <= limit, 'a page holds at most limit keys');
    keys.push(...page);
    if (next === null) return keys;
    cursor = next;
  }
  throw new Error('listing did not end');
}

export function backendConformance(label: string, factory: FixtureFactory): void {
  const test = (name: string, fn: (t: TestContext) => Promise<void>): void => {
    it(name, async () => {
      const fixture = await factory.make();
      const opened: Backend[] = [];
      const open = async (): Promise<Backend> => {
        const backend = await fixture.open();
        opened.push(backend);
        return backend;
      };
      try {
        await fn({ backend: await open(), open, fixture });
      } finally {
        for (const backend of opened) await backend.close().catch(() => undefined);
        await fixture.cleanup();
      }
    });
  };

  describe(`backend conformance: ${label}`, () => {
    test('the greeting announces a block size of at least 65536, writability and features', async ({ backend }) => {
      const info = backend.info();
      assert.ok(Number.isInteger(info.blockSize) && info.blockSize >= 65536);
      assert.equal(info.writable, true);
      assert.ok(Array.isArray(info.features));
      assert.ok(info.features.includes('admin'), 'every cairn backend offers admin');
      assert.equal(typeof info.backend, 'string');
    });

    test('put then get gives back the same bytes', async ({ backend }) => {
      const data = patternBytes(100_000, 3);
      await backend.put('block-1', data);
      assert.deepEqual(Buffer.from((await backend.get('block-1')) as Uint8Array), data);
    });

    test('get of an absent key answers nil', async ({ backend }) => {
      assert.equal(await backend.get('absent'), null);
    });

    test('an empty block may be stored and read back', async ({ backend }) => {
      await backend.put('empty', new Uint8Array(0));
      const data = await backend.get('empty');
      assert.ok(data !== null);
      assert.equal(data.byteLength, 0);
      assert.equal(await backend.exists('empty'), true);
    });

    test('put of an existing key is a no-op', async ({ backend }) => {
      await backend.put('same', Buffer.from('first'));
      await backend.put('same', Buffer.from('second'));
      assert.equal(Buffer.from((await backend.get('same')) as Uint8Array).toString(), 'first');
      const [keys] = await backend.listBlocks(null, 100);
      assert.deepEqual(keys.filter((k) => k === 'same'), ['same']);
    });

    test('exists tells a present block from an absent one', async ({ backend }) => {
      await backend.put('here', Buffer.from('x'));
      assert.equal(await backend.exists('here'), true);
      assert.equal(await backend.exists('gone'), false);
    });

    test('existsMany answers in the order of the keys', async ({ backend }) => {
      await backend.put('b', Buffer.from('b'));
      await backend.put('d', Buffer.from('d'));
      assert.deepEqual(await backend.existsMany(['a', 'b', 'c', 'd', 'b']), [false, true, false, true, true]);
      assert.deepEqual(await backend.existsMany([]), []);
    });

    test('existsMany of more than 4096 keys is a badRequest', async ({ backend }) => {
      const keys = Array.from({ length: 4097 }, (_, i) => `k${i}`);
      await rejectsWith(backend.existsMany(keys), 'badRequest');
    });

    test('a block of exactly blockSize is accepted and one byte more is tooLarge', async ({ backend }) => {
      const size = backend.info().blockSize;
      await backend.put('full', new Uint8Array(size));
      assert.equal((await backend.get('full'))?.byteLength, size);
      await rejectsWith(backend.put('over', new Uint8Array(size + 1)), 'tooLarge');
      assert.equal(await backend.exists('over'), false);
    });

    test('keys outside the key syntax are a badRequest and never touch the store', async ({ backend }) => {
      for (const key of BAD_KEYS) {
        await rejectsWith(backend.put(key as string, Buffer.from('x')), 'badRequest');
        await rejectsWith(backend.get(key as string), 'badRequest');
        await rejectsWith(backend.exists(key as string), 'badRequest');
      }
      await rejectsWith(backend.existsMany(['ok', '../bad']), 'badRequest');
      assert.deepEqual((await backend.listBlocks(null, 100))[0], []);
    });

    test('the longest valid key (128 characters) and every key character work', async ({ backend }) => {
      const keys = ['k'.repeat(128), 'A-Z_a.z-0.9', '0', '_x'];
      for (const key of keys) await backend.put(key, Buffer.from(key));
      for (const key of keys) assert.equal(Buffer.from((await backend.get(key)) as Uint8Array).toString(), key);
    });

    test('tag names outside the tag syntax are a badRequest', async ({ backend }) => {
      for (const name of BAD_TAGS) {
        await rejectsWith(backend.setTag(name as string, Buffer.from('x')), 'badRequest');
        await rejectsWith(backend.getTag(name as string), 'badRequest');
        await rejectsWith(backend.lockTag(name as string, 'me', 10), 'badRequest');
      }
      assert.deepEqual(await backend.listTags(), []);
    });

    test('remove answers whether the block existed, and the block is gone', async ({ backend }) => {
      if (!backend.info().features.includes('remove')) {
        await rejectsWith(backend.remove('x'), 'unsupported');
        return;
      }
      await backend.put('doomed', Buffer.from('x'));
      assert.equal(await backend.remove('doomed'), true);
      assert.equal(await backend.exists('doomed'), false);
      assert.equal(await backend.get('doomed'), null);
      assert.equal(await backend.remove('doomed'), false);
      await backend.put('doomed', Buffer.from('again'));
      assert.equal(Buffer.from((await backend.get('doomed')) as Uint8Array).toString(), 'again');
    });

    test('listBlocks pages cover every key exactly once', async ({ backend }) => {
      if (!backend.info().features.includes('listBlocks')) {
        await rejectsWith(backend.listBlocks(null, 10), 'unsupported');
        return;
      }
      const keys = Array.from({ length: 53 }, (_, i) => `key${String(i * 7919 % 1000).padStart(4, '0')}`);
      keys.push('a', 'Z', 'z9', '0');
      // Hex keys of every shape (a store may keep lowercase hex apart, as splitlog does), and their look-alikes.
      keys.push('ab', 'AB', 'abc', '00', '0a', '0A', 'ff00', 'ff', 'fe'.repeat(64), '0123456789abcdef'.repeat(4), 'g0');
      await Promise.all(keys.map((k) => backend.put(k, Buffer.from(k))));
      for (const limit of [1, 7, 57, 10_000]) {
        const listed = await listAll(backend, limit);
        assert.deepEqual([...listed].sort(), [...keys].sort(), `limit ${limit}`);
      }
    });

    test('listBlocks limits outside 1..10000 are a badRequest', async ({ backend }) => {
      if (!backend.info().features.includes('listBlocks')) return;
      await rejectsWith(backend.listBlocks(null, 0), 'badRequest');
      await rejectsWith(backend.listBlocks(null, 10_001), 'badRequest');
    });

    test('a key present for the whole listing appears exactly once while others come and go', async ({ backend }) => {
      if (!backend.info().features.includes('listBlocks')) return;
      const stable = Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(3, '0')}`);
      await Promise.all(stable.map((k) => backend.put(k, Buffer.from(k))));
      const seen: string[] = [];
      let cursor: string | null = null;
      let round = 0;
      do {
        const page: [string[], string | null] = await backend.listBlocks(cursor, 6);
        seen.push(...page[0]);
        cursor = page[1];
        round += 1;
        await backend.put(`n${round}`, Buffer.from('new'));
        await backend.put(`${'s'}${String(round).padStart(3, '0')}x`, Buffer.from('between'));
        if (backend.info().features.includes('remove')) await backend.remove(`n${round - 1}`);
      } while (cursor !== null);
      for (const key of stable) assert.equal(seen.filter((k) => k === key).length, 1, `${key} listed once`);
      assert.equal(new Set(seen).size, seen.length, 'no key listed twice');
    });

    test('setTag then getTag gives back the value; setTag replaces it', async ({ backend }) => {
      await backend.setTag('home@host', Buffer.from('v1'));
      assert.equal(Buffer.from((await backend.getTag('home@host')) as Uint8Array).toString(), 'v1');
      await backend.setTag('home@host', Buffer.from('version two'));
      assert.equal(Buffer.from((await backend.getTag('home@host')) as Uint8Array).toString(), 'version two');
    });

    test('getTag of an absent tag answers nil, and tag values may be empty or binary', async ({ backend }) => {
      assert.equal(await backend.getTag('nothing'), null);
      await backend.setTag('empty', new Uint8Array(0));
      assert.equal((await backend.getTag('empty'))?.byteLength, 0);
      const binary = patternBytes(5000, 9);
      await backend.setTag('bin', binary);
      assert.deepEqual(Buffer.from((await backend.getTag('bin')) as Uint8Array), binary);
    });

    test('removeTag answers whether the tag existed', async ({ backend }) => {
      await backend.setTag('t1', Buffer.from('x'));
      assert.equal(await backend.removeTag('t1'), true);
      assert.equal(await backend.getTag('t1'), null);
      assert.equal(await backend.removeTag('t1'), false);
    });

    test('listTags names every tag, reserved ones included', async ({ backend }) => {
      const names = ['alpha', 'b.c', 'd@e', '#cairn-test', '.', '..', '-x'];
      for (const name of names) await backend.setTag(name, Buffer.from(name));
      assert.deepEqual([...(await backend.listTags())].sort(), [...names].sort());
      for (const name of names) assert.equal(Buffer.from((await backend.getTag(name)) as Uint8Array).toString(), name);
    });

    test('lockTag acquires a free lock and tagLocked names its owner', async ({ backend }) => {
      assert.equal(await backend.tagLocked('t'), null);
      assert.equal(await backend.lockTag('t', 'alice', 60), true);
      assert.equal(await backend.tagLocked('t'), 'alice');
    });

    test('lockTag answers false while another owner holds a live lock', async ({ backend }) => {
      assert.equal(await backend.lockTag('t', 'alice', 60), true);
      assert.equal(await backend.lockTag('t', 'bob', 60), false);
      assert.equal(await backend.tagLocked('t'), 'alice');
    });

    test('lockTag by the owner of a live lock renews it', async ({ backend }) => {
      assert.equal(await backend.lockTag('t', 'alice', 60), true);
      assert.equal(await backend.lockTag('t', 'alice', 60), true);
      assert.equal(await backend.tagLocked('t'), 'alice');
    });

    test('a lock past its ttl counts as free', async ({ backend }) => {
      assert.equal(await backend.lockTag('t', 'alice', 1), true);
      await sleep(1100);
      assert.equal(await backend.tagLocked('t'), null);
      assert.equal(await backend.lockTag('t', 'bob', 60), true);
      assert.equal(await backend.tagLocked('t'), 'bob');
    });

    test('only the owner can unlock: another owner of a live lock gets conflict', async ({ backend }) => {
      assert.equal(await backend.lockTag('t', 'alice', 60), true);
      await rejectsWith(backend.unlockTag('t', 'bob'), 'conflict');
      assert.equal(await backend.tagLocked('t'), 'alice');
      await backend.unlockTag('t', 'alice');
      assert.equal(await backend.tagLocked('t'), null);
      assert.equal(await backend.lockTag('t', 'bob', 60), true);
    });

    test('unlocking a free tag is a no-op', async ({ backend }) => {
      await backend.unlockTag('never-locked', 'alice');
      assert.equal(await backend.tagLocked('never-locked'), null);
    });

    test('locks on different tags are independent', async ({ backend }) => {
      assert.equal(await backend.lockTag('one', 'alice', 60), true);
      assert.equal(await backend.lockTag('two', 'bob', 60), true);
      assert.equal(await backend.tagLocked('one'), 'alice');
      assert.equal(await backend.tagLocked('two'), 'bob');
    });

    test('stats reports blocks and bytes', async ({ backend }) => {
      await backend.put('s1', new Uint8Array(1000));
      await backend.put('s2', new Uint8Array(500));
      await backend.flush();
      const stats = await backend.stats();
      assert.equal(typeof stats, 'object');
      if (stats.blocks !== undefined) assert.ok(stats.blocks >= 2, `blocks ${stats.blocks}`);
      if (stats.bytes !== undefined) assert.ok(stats.bytes >= 1500, `bytes ${stats.bytes}`);
      assert.ok(stats.blocks !== undefined || stats.bytes !== undefined, 'stats has blocks or bytes');
    });

    test('admin help and info answer text', async ({ backend }) => {
      const help = await backend.admin('help', []);
      assert.equal(typeof help.text, 'string');
      assert.match(help.text, /info/);
      const info = await backend.admin('info', []);
      assert.ok(info.text.length > 0);
    });

    test('admin of an unknown command is a badRequest', async ({ backend }) => {
      await rejectsWith(backend.admin('no-such-command', []), 'badRequest');
    });

    test('requests take effect in the order sent, even when pipelined', async ({ backend }) => {
      const results: Array<Promise<unknown>> = [];
      for (let i = 0; i < 100; i += 1) {
        results.push(backend.put(`p${i}`, patternBytes(2000, i)));
        results.push(backend.get(`p${i}`));
        results.push(backend.exists(`p${i}`));
      }
      const settled = await Promise.all(results);
      for (let i = 0; i < 100; i += 1) {
        assert.deepEqual(Buffer.from(settled[i * 3 + 1] as Uint8Array), patternBytes(2000, i));
        assert.equal(settled[i * 3 + 2], true);
      }
      const tagOps = [backend.setTag('order', Buffer.from('1')), backend.removeTag('order'), backend.setTag('order', Buffer.from('3')), backend.getTag('order')];
      const tagResults = await Promise.all(tagOps);
      assert.equal(Buffer.from(tagResults[3] as Uint8Array).toString(), '3');
    });

    test('pipelined remove and put of the same key apply in order', async ({ backend }) => {
      if (!backend.info().features.includes('remove')) return;
      const ops = [
        backend.put('flip', Buffer.from('1')),
        backend.remove('flip'),
        backend.exists('flip'),
        backend.put('flip', Buffer.from('2')),
        backend.get('flip'),
      ];
      const [, removed, existed, , data] = await Promise.all(ops);
      assert.equal(removed, true);
      assert.equal(existed, false);
      assert.equal(Buffer.from(data as Uint8Array).toString(), '2');
    });

    test('an error answers one request and the stream stays usable', async ({ backend }) => {
      const [bad, good] = await Promise.allSettled([backend.put('../bad', Buffer.from('x')), backend.put('good', Buffer.from('y'))]);
      assert.equal(bad.status, 'rejected');
      assert.equal(good.status, 'fulfilled');
      assert.equal(await backend.exists('good'), true);
    });

    test('many requests in flight at once all complete', async ({ backend }) => {
      const puts = Array.from({ length: 500 }, (_, i) => backend.put(`m${i}`, patternBytes(64, i)));
      await Promise.all(puts);
      const present = await backend.existsMany(Array.from({ length: 500 }, (_, i) => `m${i}`));
      assert.ok(present.every(Boolean));
    });

    test('operations after close are refused', async ({ fixture }) => {
      const backend = await fixture.open();
      await backend.close();
      await assert.rejects(backend.get('x'));
    });

    if (factory.persistent) {
      test('after flush and close, a new open finds every block and tag', async ({ backend, open }) => {
        const blocks = Array.from({ length: 20 }, (_, i) => [`f${i}`, patternBytes(3000 + i, i)] as const);
        for (const [key, data] of blocks) await backend.put(key, data);
        await backend.setTag('kept', Buffer.from('tag value'));
        await backend.setTag('dropped', Buffer.from('x'));
        await backend.removeTag('dropped');
        if (backend.info().features.includes('remove')) await backend.remove('f0');
        await backend.flush();
        await backend.close();
        const reopened = await open();
        for (const [key, data] of blocks.slice(1)) assert.deepEqual(Buffer.from((await reopened.get(key)) as Uint8Array), data);
        if (reopened.info().features.includes('remove')) assert.equal(await reopened.exists('f0'), false);
        assert.equal(Buffer.from((await reopened.getTag('kept')) as Uint8Array).toString(), 'tag value');
        assert.equal(await reopened.getTag('dropped'), null);
      });

      test('close without an explicit flush still keeps everything', async ({ backend, open }) => {
        await backend.put('c1', Buffer.from('closed'));
        await backend.setTag('ct', Buffer.from('t'));
        await backend.close();
        const reopened = await open();
        assert.equal(Buffer.from((await reopened.get('c1')) as Uint8Array).toString(), 'closed');
        assert.equal(Buffer.from((await reopened.getTag('ct')) as Uint8Array).toString(), 't');
      });
    }

    if (factory.shared) {
      test('two clients of one archive see each other\'s flushed blocks, tags and locks', async ({ backend, open }) => {
        const other = await open();
        await backend.put('from-a', Buffer.from('a'));
        await backend.setTag('tag-a', Buffer.from('a'));
        await backend.flush();
        assert.equal(Buffer.from((await other.get('from-a')) as Uint8Array).toString(), 'a');
        assert.equal(Buffer.from((await other.getTag('tag-a')) as Uint8Array).toString(), 'a');
        await other.put('from-b', Buffer.from('b'));
        await other.flush();
        assert.equal(await backend.exists('from-b'), true);
        assert.equal(await backend.lockTag('shared', 'client-a', 60), true);
        assert.equal(await other.lockTag('shared', 'client-b', 60), false);
        assert.equal(await other.tagLocked('shared'), 'client-a');
        await rejectsWith(other.unlockTag('shared', 'client-b'), 'conflict');
        await backend.unlockTag('shared', 'client-a');
        assert.equal(await other.lockTag('shared', 'client-b', 60), true);
      });

      test('of two clients racing for one lock, exactly one wins', async ({ backend, open }) => {
        const others = [backend, await open(), await open()];
        for (let round = 0; round < 5; round += 1) {
          const tag = `race${round}`;
          const wins = await Promise.all(others.map((client, i) => client.lockTag(tag, `owner-${i}`, 60)));
          assert.equal(wins.filter(Boolean).length, 1, `round ${round}: ${wins.join(',')}`);
        }
      });
    }
  });
}
