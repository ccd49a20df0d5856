/**
 * The replicated backend with real member failures: unplugged member
 * directories, corrupted block files, members whose command exits, wiped
 * members. Members are fs archives in a scratch directory.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { Backend } from '../src/backends/backend.js';
import { BackendError } from '../src/backends/errors.js';
import { MEMBER_TAG } from '../src/backends/membership.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';
import {
  fsBlockFile, fsMemberIdentifier, holdersOnDisk, replicatedIdentifier, replug, setUpReplica, THREE_HALVES, unplug,
} from './support/replica-fixtures.js';

interface StatusData {
  underReplicated: number;
  noReachableCopy: number;
  members: Array<{ name: string; state: string; reachable: boolean | null; blocks: number; unknown: number }>;
  jobs: unknown[];
}

const MEMBERS = ['a', 'b', 'c'];
const quiet = { onLog: () => undefined };

async function withReplica(fn: (ctx: { dir: string; open(): Promise<Backend> }) => Promise<void>, members = THREE_HALVES): Promise<void> {
  const scratch = scratchDir('cairn-replica-');
  const opened: Backend[] = [];
  try {
    const identifier = await setUpReplica(scratch.dir, members);
    await fn({
      dir: scratch.dir,
      open: async () => {
        const b = await openArchive(identifier, quiet);
        opened.push(b);
        return b;
      },
    });
  } finally {
    for (const b of opened) await b.close().catch(() => undefined);
    scratch.remove();
  }
}

async function status(b: Backend): Promise<StatusData> {
  return (await b.admin('status', [])).data as StatusData;
}

async function putMany(b: Backend, count: number, prefix = 'k'): Promise<Map<string, Buffer>> {
  const blocks = new Map<string, Buffer>();
  for (let i = 0; i < count; i += 1) blocks.set(`${prefix}${String(i).padStart(4, '0')}`, patternBytes(200 + i, i + 7));
  await Promise.all([...blocks].map(([k, v]) => b.put(k, v)));
  await b.flush();
  return blocks;
}

async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof BackendError, String(err));
    assert.equal(err.code, code, err.message);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

describe('replicated backend: placement and reading', () => {
  it('a put lands on members whose trust adds up to 100% (two of three at 50%)', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const blocks = await putMany(b, 30);
    const counts = new Map<string, number>();
    for (const key of blocks.keys()) {
      const holders = holdersOnDisk(dir, MEMBERS, key);
      assert.equal(holders.length, 2, `${key} on ${holders.join(',')}`);
      for (const h of holders) counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    for (const m of MEMBERS) assert.ok((counts.get(m) ?? 0) > 5, `member ${m} took a share (${counts.get(m) ?? 0})`);
    assert.equal((await status(b)).underReplicated, 0);
  }));

  it('a member with write weight 0 is written to only when the others cannot reach 100%', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const blocks = await putMany(b, 20);
    for (const key of blocks.keys()) assert.deepEqual(holdersOnDisk(dir, MEMBERS, key).sort(), ['a', 'b']);
  }, [{ name: 'a', trust: 50 }, { name: 'b', trust: 50 }, { name: 'c', trust: 50, write: 0 }]));

  it('a flush commits this process\'s placements as durable only after the members flushed', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    await b.put('durable-1', Buffer.from('x'));
    await new Promise((resolve) => setImmediate(resolve)); // the cache commits at the end of the event loop's turn
    const db = new Database(path.join(dir, 'replica.sqlite'), { readonly: true });
    try {
      const pending = db.prepare('SELECT count(*) AS n FROM placements WHERE pending IS NOT NULL');
      assert.equal((pending.get() as { n: number }).n, 2);
      await b.flush();
      assert.equal((pending.get() as { n: number }).n, 0);
    } finally {
      db.close();
    }
  }));

  it('a member that returns corrupt bytes is caught by the checksum and repaired from another copy', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const data = patternBytes(5000, 42);
    await b.put('precious', data);
    await b.flush();
    const [first, second] = holdersOnDisk(dir, MEMBERS, 'precious') as [string, string];
    // Reads try `first` before `second` (a read weight of 0 comes last).
    await b.admin('set-weights', [second, '0', '1']);
    writeFileSync(fsBlockFile(dir, first, 'precious'), Buffer.from('garbage of another size'));
    assert.deepEqual(Buffer.from((await b.get('precious')) as Uint8Array), data);
    assert.deepEqual(readFileSync(fsBlockFile(dir, first, 'precious')), data, `member ${first} repaired`);
    // Every copy corrupt: the block cannot be read, and nothing pretends otherwise.
    for (const h of [first, second]) writeFileSync(fsBlockFile(dir, h, 'precious'), Buffer.from('garbage'));
    await rejectsWith(b.get('precious'), 'corrupt');
  }));

  it('exists and existsMany answer from the placement cache, even with every member unreachable', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    await putMany(b, 5);
    for (const m of MEMBERS) unplug(dir, m);
    assert.equal(await b.exists('k0002'), true);
    assert.deepEqual(await b.existsMany(['k0000', 'nope', 'k0004']), [true, false, true]);
    await rejectsWith(b.get('k0002'), 'unavailable', /not on any reachable member/);
    for (const m of MEMBERS) replug(dir, m);
  }));

  it('a block missing from its holders is found on another member and recorded', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    await b.put('moved', Buffer.from('moved bytes'));
    await b.flush();
    const [first, second] = holdersOnDisk(dir, MEMBERS, 'moved') as [string, string];
    const other = MEMBERS.find((m) => m !== first && m !== second) as string;
    // The block moves to the member the cache does not know about.
    const bytes = readFileSync(fsBlockFile(dir, first, 'moved'));
    rmSync(fsBlockFile(dir, first, 'moved'));
    rmSync(fsBlockFile(dir, second, 'moved'));
    const direct = await openArchive(fsMemberIdentifier(dir, other), quiet);
    await direct.put('moved', bytes);
    await direct.close();
    assert.equal(Buffer.from((await b.get('moved')) as Uint8Array).toString(), 'moved bytes');
    const st = await status(b);
    assert.equal(st.members.find((m) => m.name === other)?.blocks, 1);
  }));

  it('an unplugged member: reads and writes go on, status shows the shortfall, re-replicate fixes it', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const blocks = await putMany(b, 40);
    unplug(dir, 'c');
    for (const [key, data] of blocks) assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), data);
    const more = await putMany(b, 10, 'late');
    for (const key of more.keys()) assert.deepEqual(holdersOnDisk(dir, MEMBERS, key).sort(), ['a', 'b']);
    const before = await status(b);
    const onC = before.members.find((m) => m.name === 'c');
    assert.equal(onC?.reachable, false);
    assert.ok(before.underReplicated > 0 && before.underReplicated === onC?.blocks, `shortfall ${before.underReplicated}`);
    const text = (await b.admin('status', [])).text;
    assert.match(text, /short of 100% trust/);
    await b.admin('re-replicate', []);
    assert.equal((await status(b)).underReplicated, 0);
    for (const key of blocks.keys()) assert.deepEqual(holdersOnDisk(dir, ['a', 'b'], key).sort(), ['a', 'b']);
    replug(dir, 'c');
    const after = await status(b);
    assert.equal(after.members.find((m) => m.name === 'c')?.reachable, true);
    assert.equal(after.underReplicated, 0);
  }));

  it('a member whose command exits counts as unreachable; a put short of 100% is unavailable and re-replicate finishes it', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    await rejectsWith(b.put('short', Buffer.from('only half')), 'unavailable', /reached only 50% .*short by 50%/);
    assert.equal(holdersOnDisk(dir, ['a'], 'short').length, 1, 'what was stored is kept');
    assert.equal(await b.exists('short'), true);
    assert.equal((await status(b)).underReplicated, 1);
    await b.admin('add-member', ['d', fsMemberIdentifier(dir, 'd'), '50']);
    const result = await b.admin('re-replicate', []);
    assert.match(result.text, /1 copies made/);
    assert.deepEqual(holdersOnDisk(dir, ['a', 'd'], 'short'), ['a', 'd']);
    assert.equal((await status(b)).underReplicated, 0);
  }, [{ name: 'a', trust: 50 }, { name: 'gone', trust: 50, identifier: `${process.execPath} -e "process.exit(3)"`, offline: true }]));
});

describe('replicated backend: tags and locks', () => {
  it('a tag written while a member was down is healed on it when read', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    await b.setTag('home', Buffer.from('v1'));
    unplug(dir, 'c');
    await b.setTag('home', Buffer.from('v2'));
    replug(dir, 'c');
    await b.admin('status', []); // lets the member be tried again at once
    const stale = await openArchive(fsMemberIdentifier(dir, 'c'), quiet);
    assert.match(Buffer.from((await stale.getTag('home')) as Uint8Array).toString('latin1'), /v1$/);
    assert.equal(Buffer.from((await b.getTag('home')) as Uint8Array).toString(), 'v2');
    assert.match(Buffer.from((await stale.getTag('home')) as Uint8Array).toString('latin1'), /v2$/);
    await stale.close();
  }));

  it('a tag removed while a member was down does not come back from it', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    await b.setTag('gone', Buffer.from('value'));
    unplug(dir, 'a');
    assert.equal(await b.removeTag('gone'), true);
    replug(dir, 'a');
    await b.admin('status', []);
    assert.equal(await b.getTag('gone'), null);
    assert.deepEqual(await b.listTags(), []);
  }));

  it('a tag write needs 100% trust among the members that took it', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    unplug(dir, 'b');
    await rejectsWith(b.setTag('t', Buffer.from('x')), 'unavailable', /only 50%/);
  }, [{ name: 'a', trust: 50 }, { name: 'b', trust: 50 }]));

  it('a lock refused by one member releases the ones taken before it', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const memberB = await openArchive(fsMemberIdentifier(dir, 'b'), quiet);
    assert.equal(await memberB.lockTag('snap', 'intruder', 60), true);
    assert.equal(await b.lockTag('snap', 'me', 60), false);
    const memberA = await openArchive(fsMemberIdentifier(dir, 'a'), quiet);
    assert.equal(await memberA.tagLocked('snap'), null, 'the lock taken on a was released');
    await memberB.unlockTag('snap', 'intruder');
    assert.equal(await b.lockTag('snap', 'me', 60), true);
    for (const m of [memberA, memberB]) assert.equal(await m.tagLocked('snap'), 'me');
    await b.unlockTag('snap', 'me');
    for (const m of [memberA, memberB]) assert.equal(await m.tagLocked('snap'), null);
    await memberA.close();
    await memberB.close();
  }));
});

describe('replicated backend: membership', () => {
  let scratch: { dir: string; remove(): void };
  let identifier: string;
  before(async () => {
    scratch = scratchDir('cairn-replica-');
    identifier = await setUpReplica(scratch.dir, THREE_HALVES);
  });
  after(() => scratch.remove());

  it('a member opened directly greets with member, in process and spawned', async () => {
    const b = await openArchive(identifier, quiet);
    const setName = ((await b.admin('info', [])).data as { set: string }).set;
    await b.close();
    for (const spawnOwn of [false, true]) {
      const member = await openArchive(fsMemberIdentifier(scratch.dir, 'a'), { ...quiet, spawnOwn });
      assert.equal(member.info().member, setName);
      assert.equal(Buffer.from((await member.getTag(MEMBER_TAG)) as Uint8Array).toString(), setName);
      await member.close();
    }
  });

  it('add-member refuses an archive of another replicated set', async () => {
    const other = scratchDir('cairn-replica-other-');
    try {
      await setUpReplica(other.dir, [{ name: 'x', trust: 100, identifier: fsMemberIdentifier(other.dir, 'x') }]);
      const b = await openArchive(identifier, quiet);
      try {
        await rejectsWith(b.admin('add-member', ['x', fsMemberIdentifier(other.dir, 'x'), '50']), 'badRequest', /another replicated set/);
        await rejectsWith(b.admin('add-member', ['bad name', 'backend-fs memory', '50']), 'badRequest');
        await rejectsWith(b.admin('add-member', ['y', 'backend-fs memory', '101']), 'badRequest', /trust/);
        await rejectsWith(b.admin('set-trust', ['nobody', '10']), 'badRequest', /no member named/);
      } finally {
        await b.close();
      }
    } finally {
      other.remove();
    }
  });

  it('a member whose archive was wiped is refused, not taken for an empty member', async () => {
    const b = await openArchive(identifier, quiet);
    try {
      await b.put('w1', Buffer.from('wiped?'));
      await b.flush();
      rmSync(path.join(scratch.dir, 'c'), { recursive: true });
      const st = (await b.admin('status', [])).data as StatusData;
      assert.equal(st.members.find((m) => m.name === 'c')?.reachable, false);
      assert.match((await b.admin('status', [])).text, /no longer carries the membership tag/);
      assert.equal(Buffer.from((await b.get('w1')) as Uint8Array).toString(), 'wiped?');
    } finally {
      await b.close();
    }
  });
});

describe('replicated backend: drain, lost, verify', () => {
  it('drain copies away what needs it, then retires the member', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const blocks = await putMany(b, 60);
    const result = await b.admin('drain', ['b']);
    assert.match(result.text, /retired/);
    for (const key of blocks.keys()) assert.deepEqual(holdersOnDisk(dir, ['a', 'c'], key).sort(), ['a', 'c'], key);
    const st = await status(b);
    assert.deepEqual(st.members.map((m) => m.name), ['a', 'c']);
    assert.equal(st.underReplicated, 0);
    const drained = await openArchive(fsMemberIdentifier(dir, 'b'), quiet);
    assert.equal(drained.info().member, undefined, 'the drained archive no longer carries the membership tag');
    await drained.close();
    for (const [key, data] of blocks) assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), data);
  }));

  it('drain that cannot reach 100% without the member keeps it draining and says so', () => withReplica(async ({ open }) => {
    const b = await open();
    await putMany(b, 5);
    const result = await b.admin('drain', ['a']);
    assert.match(result.text, /not finished/);
    assert.equal((await status(b)).members.find((m) => m.name === 'a')?.state, 'draining');
    await b.admin('set-state', ['a', 'active']);
    assert.equal((await status(b)).members.find((m) => m.name === 'a')?.state, 'active');
  }, [{ name: 'a', trust: 50 }, { name: 'b', trust: 50 }]));

  it('lost forgets the member and re-replicates what fell short', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const blocks = await putMany(b, 40);
    rmSync(path.join(dir, 'a'), { recursive: true, force: true });
    writeFileSync(path.join(dir, 'a'), 'gone');
    const result = await b.admin('lost', ['a']);
    assert.match(result.text, /marked lost/);
    for (const [key, data] of blocks) {
      assert.deepEqual(holdersOnDisk(dir, ['b', 'c'], key).sort(), ['b', 'c']);
      assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), data);
    }
    const st = await status(b);
    assert.equal(st.underReplicated, 0);
    assert.equal(st.members.find((m) => m.name === 'a')?.state, 'lost');
  }));

  it('verify finds blocks a member lost and blocks the cache did not know; rebuild-cache rebuilds placements', () => withReplica(async ({ dir, open }) => {
    const b = await open();
    const blocks = await putMany(b, 20);
    const victim = [...blocks.keys()].find((k) => holdersOnDisk(dir, ['a'], k).length === 1) as string;
    rmSync(fsBlockFile(dir, 'a', victim));
    const direct = await openArchive(fsMemberIdentifier(dir, 'b'), quiet);
    await direct.put('stray', Buffer.from('stray block'));
    await direct.close();
    const result = await b.admin('verify', ['a']);
    assert.match(result.text, /a: \d+ blocks listed, 0 unknown to the cache adopted, 1 the cache placed there are missing/);
    assert.equal((await status(b)).underReplicated, 1);
    await b.admin('verify', []);
    assert.equal(await b.exists('stray'), true);
    assert.equal(Buffer.from((await b.get('stray')) as Uint8Array).toString(), 'stray block');
    await b.admin('re-replicate', []);
    assert.equal((await status(b)).underReplicated, 0);
    const rebuilt = await b.admin('rebuild-cache', []);
    assert.match(rebuilt.text, /rebuild-cache/);
    const st = await status(b);
    assert.equal(st.underReplicated, 0);
    assert.equal(st.members.reduce((n, m) => n + m.blocks, 0), 2 * 21);
    for (const [key, data] of blocks) assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), data);
  }));
});

describe('replicated backend: identifier', () => {
  it('a config file that is not a replicated set is refused with a clear message', async () => {
    const scratch = scratchDir('cairn-replica-');
    try {
      const file = path.join(scratch.dir, 'other.sqlite');
      const db = new Database(file);
      db.exec('CREATE TABLE t (x)');
      db.close();
      await rejectsWith(openArchive(`backend-replicated ${file}`, quiet), 'badRequest', /not a replicated set/);
      await rejectsWith(openArchive(replicatedIdentifier(scratch.dir) + ' extra', quiet), 'badRequest', /one argument/);
    } finally {
      scratch.remove();
    }
  });
});
