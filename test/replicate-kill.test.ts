/**
 * SIGKILL of a real `backend-replicated` process in the middle of drain and
 * re-replicate: after a restart the command resumes where it stopped and
 * finishes, and no block is lost.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { Backend } from '../src/backends/backend.js';
import { openArchive, ownCommandPath } from '../src/backends/open.js';
import { RemoteBackend } from '../src/protocol/remote-backend.js';
import { patternBytes, scratchDir } from './support/scratch.js';
import { holdersOnDisk, replicatedIdentifier, setUpReplica, THREE_HALVES, unplug } from './support/replica-fixtures.js';

const BLOCKS = 600;

interface Spawned {
  backend: Backend;
  child: ChildProcess;
  exited: Promise<void>;
}

async function spawnReplicated(dir: string, onLog: (text: string) => void): Promise<Spawned> {
  const child = spawn(process.execPath, [ownCommandPath('backend-replicated'), path.join(dir, 'replica.sqlite')], { stdio: ['pipe', 'pipe', 'ignore'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const { stdin, stdout } = child;
  if (stdin === null || stdout === null) throw new Error('no pipes');
  stdin.on('error', () => undefined);
  const backend = await RemoteBackend.connect(stdout, stdin, {
    label: 'backend-replicated',
    onLog: (_level, text) => onLog(text),
  });
  return { backend, child, exited };
}

function blocksOf(count: number): Map<string, Buffer> {
  const blocks = new Map<string, Buffer>();
  for (let i = 0; i < count; i += 1) blocks.set(`blk${String(i).padStart(5, '0')}`, patternBytes(64 + (i % 50), i));
  return blocks;
}

/** Runs `command` on a spawned replicated process and SIGKILLs it at its first progress notice. */
async function killDuring(dir: string, command: string, args: string[]): Promise<void> {
  let killed = false;
  const spawned = await spawnReplicated(dir, (text) => {
    if (!killed && text.includes('blocks checked')) {
      killed = true;
      spawned.child.kill('SIGKILL');
    }
  });
  await assert.rejects(spawned.backend.admin(command, args), 'the command dies with its process');
  await spawned.exited;
  assert.ok(killed, 'the process was killed during the command');
}

function unfinishedJobs(dir: string): Array<{ name: string; cursor: string | null }> {
  const db = new Database(path.join(dir, 'replica.sqlite'), { readonly: true });
  try {
    return db.prepare('SELECT name, cursor FROM jobs').all() as Array<{ name: string; cursor: string | null }>;
  } finally {
    db.close();
  }
}

/** Placements recorded but not yet seen flushed, by any process. */
function pendingPlacements(dir: string): number {
  const db = new Database(path.join(dir, 'replica.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM placements WHERE pending IS NOT NULL').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function fill(dir: string, blocks: Map<string, Buffer>): Promise<void> {
  const spawned = await spawnReplicated(dir, () => undefined);
  await Promise.all([...blocks].map(([k, v]) => spawned.backend.put(k, v)));
  await spawned.backend.close();
  await spawned.exited;
}

describe('replicated backend: SIGKILL in the middle of long commands', () => {
  it('drain killed half-way resumes after a restart, finishes, and loses nothing', async () => {
    const scratch = scratchDir('cairn-replica-kill-');
    try {
      await setUpReplica(scratch.dir, THREE_HALVES);
      const blocks = blocksOf(BLOCKS);
      await fill(scratch.dir, blocks);
      await killDuring(scratch.dir, 'drain', ['b']);
      const jobs = unfinishedJobs(scratch.dir);
      assert.equal(jobs.length, 1);
      assert.match(jobs[0]?.name ?? '', /^drain:/);
      assert.ok(jobs[0]?.cursor !== null, 'the drain had recorded progress');

      const logs: string[] = [];
      const restarted = await spawnReplicated(scratch.dir, (text) => logs.push(text));
      const status = await restarted.backend.admin('status', []);
      assert.match(status.text, /unfinished job drain/);
      const result = await restarted.backend.admin('drain', ['b']);
      assert.match(result.text, /retired/);
      assert.ok(logs.some((l) => /drain b: .*resuming after blk\d+/.test(l)), `resumed: ${logs.join(' | ')}`);
      for (const [key, data] of blocks) {
        assert.deepEqual(holdersOnDisk(scratch.dir, ['a', 'c'], key), ['a', 'c'], key);
        assert.deepEqual(Buffer.from((await restarted.backend.get(key)) as Uint8Array), data);
      }
      const after = (await restarted.backend.admin('status', [])).data as { underReplicated: number; jobs: unknown[] };
      assert.equal(after.underReplicated, 0);
      assert.deepEqual(after.jobs, []);
      await restarted.backend.close();
      await restarted.exited;
    } finally {
      scratch.remove();
    }
  });

  it('re-replicate killed half-way resumes after a restart, finishes, and loses nothing', async () => {
    const scratch = scratchDir('cairn-replica-kill-');
    try {
      await setUpReplica(scratch.dir, THREE_HALVES);
      const blocks = blocksOf(BLOCKS);
      await fill(scratch.dir, blocks);
      unplug(scratch.dir, 'c');
      await killDuring(scratch.dir, 're-replicate', []);
      assert.equal(unfinishedJobs(scratch.dir)[0]?.name, 're-replicate');

      const logs: string[] = [];
      const restarted = await openArchive(replicatedIdentifier(scratch.dir), { onLog: (_level, text) => logs.push(text) });
      const before = (await restarted.admin('status', [])).data as { underReplicated: number };
      assert.ok(before.underReplicated > 0, 'the killed run left work to do');
      await restarted.admin('re-replicate', []);
      assert.ok(logs.some((l) => /re-replicate: .*resuming after blk\d+/.test(l)), `resumed: ${logs.join(' | ')}`);
      const after = (await restarted.admin('status', [])).data as { underReplicated: number; jobs: unknown[] };
      assert.equal(after.underReplicated, 0);
      assert.deepEqual(after.jobs, []);
      for (const [key, data] of blocks) {
        assert.deepEqual(holdersOnDisk(scratch.dir, ['a', 'b'], key), ['a', 'b'], key);
        assert.deepEqual(Buffer.from((await restarted.get(key)) as Uint8Array), data);
      }
      await restarted.close();
      assert.equal(pendingPlacements(scratch.dir), 0, 'copies the killed process never flushed were checked and settled');
    } finally {
      scratch.remove();
    }
  });
});
