/**
 * The replicated backend over members behind the fault-injecting proxy
 * `backend-faulty`: a member that corrupts what it returns, one that
 * acknowledges writes without storing them, and a member process that is
 * SIGKILLed in the middle of a stream of puts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { openArchive } from '../src/backends/open.js';
import { quoteArgument } from '../src/protocol/identifier.js';
import { patternBytes, scratchDir } from './support/scratch.js';
import { fsMemberIdentifier, holdersOnDisk, replicatedIdentifier, setUpReplica, type MemberSpec } from './support/replica-fixtures.js';

const quiet = { onLog: () => undefined };

function faulty(dir: string, name: string, options: string): string {
  return `backend-faulty ${options} ${quoteArgument(fsMemberIdentifier(dir, name))}`;
}

async function withReplica(
  members: (dir: string) => MemberSpec[],
  fn: (dir: string, b: Backend) => Promise<void>,
  openOptions: { spawnOwn?: boolean } = {},
): Promise<void> {
  const scratch = scratchDir('cairn-replica-faulty-');
  try {
    await setUpReplica(scratch.dir, members(scratch.dir));
    const b = await openArchive(replicatedIdentifier(scratch.dir), { ...quiet, ...openOptions });
    try {
      await fn(scratch.dir, b);
    } finally {
      await b.close().catch(() => undefined);
    }
  } finally {
    scratch.remove();
  }
}

async function putAll(b: Backend, count: number): Promise<Map<string, Buffer>> {
  const blocks = new Map<string, Buffer>();
  for (let i = 0; i < count; i += 1) blocks.set(`f${String(i).padStart(3, '0')}`, patternBytes(300 + i, i + 1));
  for (const [k, v] of blocks) await b.put(k, v);
  await b.flush();
  return blocks;
}

describe('replicated backend over backend-faulty members', () => {
  it('a member that corrupts the blocks it returns is caught by the checksum; reads come from the good copy', () => withReplica(
    (dir) => [
      { name: 'good', trust: 50, read: 0 },
      { name: 'bad', trust: 50, identifier: faulty(dir, 'bad', Array.from({ length: 40 }, (_, i) => `--corrupt-get ${i + 1}`).join(' ')) },
    ],
    async (_dir, b) => {
      const blocks = await putAll(b, 20);
      for (const [key, data] of blocks) assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), data, key);
    },
  ));

  it('a member that acknowledges writes without storing them is found out by verify and re-replicate restores full trust', () => withReplica(
    (dir) => [
      { name: 'a', trust: 50 },
      { name: 'b', trust: 50 },
      { name: 'liar', trust: 50, identifier: faulty(dir, 'liar', '--seed 11 --drop-writes 1:put') },
    ],
    async (dir, b) => {
      const blocks = await putAll(b, 30);
      const verified = await b.admin('verify', []);
      assert.match(verified.text, /liar: 0 blocks listed, 0 unknown to the cache adopted, [1-9]\d* the cache placed there are missing/);
      assert.ok(((await b.admin('status', [])).data as { underReplicated: number }).underReplicated > 0);
      await b.admin('set-state', ['liar', 'read-only']);
      await b.admin('re-replicate', []);
      assert.equal(((await b.admin('status', [])).data as { underReplicated: number }).underReplicated, 0);
      for (const [key, data] of blocks) {
        assert.deepEqual(holdersOnDisk(dir, ['a', 'b'], key), ['a', 'b']);
        assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), data);
      }
    },
  ));

  it('a member process SIGKILLed in the middle of puts is replaced by another member; every put keeps full trust', async () => {
    const saved = process.env.CAIRN_SPAWN_BACKENDS;
    process.env.CAIRN_SPAWN_BACKENDS = '1'; // members run as their own processes, so only the faulty one dies
    try {
      await withReplica(
        (dir) => [
          { name: 'a', trust: 50 },
          { name: 'b', trust: 50 },
          { name: 'k', trust: 50, identifier: faulty(dir, 'k', '--kill-after 6:put') },
        ],
        async (dir, b) => {
          const blocks = await putAll(b, 40);
          for (const [key, data] of blocks) {
            assert.ok(holdersOnDisk(dir, ['a', 'b', 'k'], key).length >= 2, `${key} on two members`);
            assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), data);
          }
          assert.equal(((await b.admin('status', [])).data as { underReplicated: number }).underReplicated, 0);
        },
        { spawnOwn: true },
      );
    } finally {
      if (saved === undefined) delete process.env.CAIRN_SPAWN_BACKENDS;
      else process.env.CAIRN_SPAWN_BACKENDS = saved;
    }
  });
});
