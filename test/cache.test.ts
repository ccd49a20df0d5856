import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { Backend } from '../src/backends/backend.js';
import { CacheBackend } from '../src/backends/cache/cache-backend.js';
import { cacheFactory } from '../src/backends/cache/factory.js';
import { BackendError } from '../src/backends/errors.js';
import { parseFaultArgs } from '../src/backends/faulty/fault-schedule.js';
import { FaultyBackend } from '../src/backends/faulty/faulty-backend.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { openArchive } from '../src/backends/open.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-cache-');
after(() => scratch.remove());
let fileCount = 0;
const cacheFile = (): string => `${scratch.dir}/cache-${(fileCount += 1)}.sqlite`;

/** The keys committed to a cache file, read with SQLite directly. */
function committedKeys(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT key FROM blocks ORDER BY key').all() as Array<{ key: string }>).map((r) => r.key);
  } finally {
    db.close();
  }
}

const faulty = (inner: Backend, ...options: string[]): FaultyBackend => new FaultyBackend(inner, parseFaultArgs(['--seed', '1', ...options], {}).schedule);

describe('backend-cache', () => {
  it('answers exists for a known block locally, without asking the inner archive', async () => {
    const store = new MemoryStore();
    const cache = new CacheBackend(new MemoryBackend(store), cacheFile());
    await cache.put('known', Buffer.from('x'));
    await cache.flush();
    store.blocks.delete('known'); // behind the cache's back: only a local answer can still say yes
    assert.equal(await cache.exists('known'), true);
    assert.deepEqual(await cache.existsMany(['known', 'other']), [true, false]);
    const stats = await cache.admin('stats', []);
    assert.deepEqual(stats.data, { hits: 2, misses: 2, entries: 1, pending: 0 });
    await cache.close();
  });

  it('caches only positive answers: a miss is asked again, and remembered once present', async () => {
    const store = new MemoryStore();
    const cache = new CacheBackend(new MemoryBackend(store), cacheFile());
    assert.equal(await cache.exists('later'), false);
    store.blocks.set('later', Buffer.from('stored by someone else'));
    assert.equal(await cache.exists('later'), true);
    store.blocks.delete('later');
    assert.equal(await cache.exists('later'), true, 'remembered after the inner archive said yes');
    await cache.close();
  });

  it('a put the inner archive refused is not recorded', async () => {
    const file = cacheFile();
    const cache = new CacheBackend(faulty(new MemoryBackend(), '--fail-op', '1:put:unavailable'), file);
    await assert.rejects(cache.put('refused', Buffer.from('x')), (err: unknown) => err instanceof BackendError && err.code === 'unavailable');
    assert.equal(await cache.exists('refused'), false);
    await cache.close();
    assert.deepEqual(committedKeys(file), []);
  });

  it('a put becomes durable in the cache file only after the inner flush returned', async () => {
    const file = cacheFile();
    const cache = new CacheBackend(new MemoryBackend(), file);
    await cache.put('a', Buffer.from('a'));
    assert.equal(await cache.exists('a'), true, 'answered from memory before the flush');
    assert.deepEqual(committedKeys(file), [], 'not in the file before the inner flush');
    await cache.flush();
    assert.deepEqual(committedKeys(file), ['a']);
    await cache.close();
  });

  it('when the inner flush fails, nothing learnt since the last flush is committed', async () => {
    const file = cacheFile();
    const cache = new CacheBackend(faulty(new MemoryBackend(), '--fail-op', '1:flush:unavailable'), file);
    await cache.put('unflushed', Buffer.from('x'));
    await assert.rejects(cache.flush());
    assert.deepEqual(committedKeys(file), []);
    await cache.flush();
    assert.deepEqual(committedKeys(file), ['unflushed']);
    await cache.close();
  });

  it('a crashed cache process never claims a block it did not see flushed (real SIGKILL)', async () => {
    const file = cacheFile();
    const dir = `${scratch.dir}/crash-archive`;
    // The faulty proxy runs inside the cache's process and kills it at the fourth operation.
    const log = `${scratch.dir}/crash.log`;
    const identifier = `backend-cache ${file} 'backend-faulty --kill-after 3 --log ${log} "backend-fs fs ${dir}"'`;
    const cache = await openArchive(identifier, { spawnOwn: true, stderr: null, onLog: () => undefined });
    await cache.put('flushed', Buffer.from('1'));
    await cache.flush();
    await cache.put('unflushed', Buffer.from('2'));
    await assert.rejects(cache.exists('anything'), (err: unknown) => err instanceof BackendError && err.code === 'unavailable');
    await cache.close().catch(() => undefined);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { op?: string; result?: string });
    assert.deepEqual(lines.at(-1), { ...lines.at(-1), op: 'exists', result: 'killed' });
    assert.deepEqual(committedKeys(file), ['flushed']);
  });

  it('remove deletes the entry, so the next exists asks the inner archive', async () => {
    const file = cacheFile();
    const cache = new CacheBackend(new MemoryBackend(), file);
    await cache.put('doomed', Buffer.from('x'));
    await cache.flush();
    assert.equal(await cache.remove('doomed'), true);
    assert.deepEqual(committedKeys(file), []);
    assert.equal(await cache.exists('doomed'), false);
    await cache.close();
  });

  it('clients sharing one cache file: a key one learnt is not vouched for after another removed it', async () => {
    const file = cacheFile();
    const store = new MemoryStore();
    const a = new CacheBackend(new MemoryBackend(store), file);
    const b = new CacheBackend(new MemoryBackend(store), file);
    await a.put('shared', Buffer.from('x')); // learnt by a, not yet committed
    assert.equal(await b.remove('shared'), true);
    assert.equal(await a.exists('shared'), false, 'a saw b\'s removal in the shared removal log');
    await a.put('again', Buffer.from('y'));
    assert.equal(await a.exists('again'), true);
    await b.remove('again');
    await a.flush();
    assert.deepEqual(committedKeys(file), [], 'a learnt key removed by b is never committed');
    await a.close();
    await b.close();
  });

  it('Ugarit\'s warning: a removal that bypasses the cache leaves it vouching for a lost block', async () => {
    const store = new MemoryStore();
    const cache = new CacheBackend(new MemoryBackend(store), cacheFile());
    const bypass = new MemoryBackend(store);
    await cache.put('gone', Buffer.from('x'));
    await cache.flush();
    await bypass.remove('gone');
    assert.equal(await cache.exists('gone'), true, 'the unsafe set-up the README warns about');
    assert.equal(await cache.get('gone'), null, 'get still asks the inner archive');
    assert.equal(await cache.exists('gone'), false, 'and a get that finds the block missing forgets it');
    await cache.close();
  });

  it('admin clear forgets every key and rebuild refills the cache from listBlocks', async () => {
    const file = cacheFile();
    const store = new MemoryStore();
    const cache = new CacheBackend(new MemoryBackend(store), file);
    for (const key of ['k1', 'k2', 'k3']) await cache.put(key, Buffer.from(key));
    store.blocks.set('k4', Buffer.from('put around the cache'));
    await cache.flush();
    assert.equal((await cache.admin('clear', [])).data !== null, true);
    assert.deepEqual(committedKeys(file), []);
    const rebuilt = await cache.admin('rebuild', []);
    assert.deepEqual(rebuilt.data, { listed: 4, entries: 4 });
    assert.deepEqual(committedKeys(file), ['k1', 'k2', 'k3', 'k4']);
    await assert.rejects(cache.admin('clear', ['extra']), (err: unknown) => err instanceof BackendError && err.code === 'badRequest');
    await cache.close();
  });

  it('admin help lists the cache\'s commands and then the inner archive\'s; other commands reach the inner archive', async () => {
    const cache = new CacheBackend(new MemoryBackend(), cacheFile());
    const help = await cache.admin('help', []);
    assert.match(help.text, /cache admin commands:[\s\S]*rebuild[\s\S]*memory admin commands:/);
    const info = await cache.admin('info', []);
    assert.match(info.text, /cacheFile:[\s\S]*inner archive \(memory\):[\s\S]*persistent: *false/);
    const innerStats = await cache.admin('inner', ['stats']);
    assert.deepEqual(innerStats.data, { blocks: 0, bytes: 0, tags: 0 });
    await assert.rejects(cache.admin('no-such', []), /unknown admin command "no-such" for memory/);
    await cache.close();
  });

  it('the cache file is 0600 SQLite in WAL mode with a schema version, and a newer schema is refused clearly', async () => {
    const file = cacheFile();
    const cache = new CacheBackend(new MemoryBackend(), file);
    await cache.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const db = new Database(file);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('user_version', { simple: true }), 1);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => new CacheBackend(new MemoryBackend(), file), /schema version 99, newer[\s\S]*only a cache/);
  });

  it('a file that is not SQLite is refused with a message naming it', async () => {
    const file = `${scratch.dir}/not-sqlite`;
    writeFileSync(file, 'hello, this is not a database at all, but long enough to be read as a header.....');
    assert.throws(() => new CacheBackend(new MemoryBackend(), file), (err: unknown) => err instanceof BackendError && err.message.includes(file));
  });

  it('the command line takes a cache file and one inner identifier', () => {
    assert.deepEqual(cacheFactory.parseArgs(['/c.sqlite', 'backend-fs fs /a']), { cacheFile: '/c.sqlite', inner: 'backend-fs fs /a' });
    assert.throws(() => cacheFactory.parseArgs(['/c.sqlite']), /two arguments/);
    assert.throws(() => cacheFactory.parseArgs(['/c.sqlite', 'backend-fs', 'fs', '/a']), /two arguments/);
    assert.throws(() => cacheFactory.parseArgs(['--size', '1', '/c.sqlite', 'x']), /unknown option --size/);
  });
});
