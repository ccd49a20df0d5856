/**
 * A restore sets each entry's owner and mode with as few calls as it can
 * (src/archive/restore-file.ts): a file whose mode the umask leaves whole
 * is created with it, and an entry that a new entry's owner fits is not
 * chowned. Whatever it skips, the tree restored has every owner and mode of
 * the snapshot, in a DEST that gives new entries its own group (set-group-ID)
 * as in a plain one, on the restore thread as on the main one.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lchownSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Archive } from '../src/archive/archive.js';
import { Extractor } from '../src/archive/extract.js';
import { createModeOf, probeNewEntry } from '../src/archive/restore-file.js';
import { snapshotTree } from '../src/archive/snapshot.js';
import { resolveEntry } from '../src/archive/snapshot-ref.js';
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { assertSameTree, contentOf, walkTree } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-restore-metadata-');
const asRoot = process.getuid?.() === 0;
let umaskBefore = 0;
before(() => {
  umaskBefore = process.umask(0o022);
});
after(() => {
  process.umask(umaskBefore);
  scratch.remove();
});

test('a file is created with its mode only when that is its whole mode under the umask, without set-id or sticky bits', () => {
  assert.equal(createModeOf(0o100644, 0o022), 0o644);
  assert.equal(createModeOf(0o100600, 0o077), 0o600);
  assert.equal(createModeOf(0o100000, 0o022), 0o000);
  assert.equal(createModeOf(0o100664, 0o022), undefined, 'the umask clears group write');
  assert.equal(createModeOf(0o104755, 0o022), undefined, 'set-user-ID: set after the chown');
  assert.equal(createModeOf(0o102755, 0), undefined, 'set-group-ID');
  assert.equal(createModeOf(0o101755, 0), undefined, 'sticky');
});

test('a probe finds what a new entry gets: the process\'s owner or a set-group-ID directory\'s group, and the umask; it leaves nothing; an unwritable place gives null', () => {
  const plain = path.join(scratch.dir, 'probe-plain');
  mkdirSync(plain);
  assert.deepEqual(probeNewEntry(plain), { owner: [process.geteuid?.(), process.getegid?.()], umask: 0o022 });
  process.umask(0o027);
  try {
    assert.equal(probeNewEntry(plain)?.umask, 0o027);
  } finally {
    process.umask(0o022);
  }
  assert.deepEqual(readdirSync(plain), []);
  if (asRoot) {
    const shared = path.join(scratch.dir, 'probe-setgid');
    mkdirSync(shared);
    chownSync(shared, 0, 2222);
    chmodSync(shared, 0o2775);
    assert.deepEqual(probeNewEntry(shared)?.owner, [0, 2222]);
    assert.deepEqual(readdirSync(shared), []);
  }
  assert.equal(probeNewEntry(path.join(scratch.dir, 'missing', 'dir')), null);
});

/** Files of one block (the restore thread's) and of several (the main thread's), with modes that need a chmod and modes that do not, and (as root) owners that a new entry has and owners it has not. */
function makeTree(src: string): void {
  const modes = [0o644, 0o664, 0o600, 0o755, 0o444, 0o4755, 0o2750, 0o1644];
  const owners: Array<[number, number]> = [[0, 0], [1234, 5678], [0, 2222], [1234, 0]];
  for (let d = 0; d < 3; d += 1) {
    const dir = path.join(src, `d${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 16; f += 1) {
      const file = path.join(dir, `f${f}`);
      writeFileSync(file, `${d}/${f}\n`.repeat(f + 1));
      if (asRoot) chownSync(file, ...(owners[(d + f) % owners.length] as [number, number]));
      chmodSync(file, modes[f % modes.length] as number);
    }
    if (asRoot) chownSync(dir, ...(owners[d] as [number, number]));
    chmodSync(dir, [0o755, 0o2770, 0o700][d] as number);
  }
  for (const [name, mode] of [['big-664', 0o664], ['big-640', 0o640]] as const) {
    const file = path.join(src, name);
    writeFileSync(file, contentOf(3 * 1024 * 1024, mode));
    if (asRoot) chownSync(file, 1234, 0);
    chmodSync(file, mode);
  }
  symlinkSync('d0/f0', path.join(src, 'link'));
  if (asRoot) lchownSync(path.join(src, 'link'), 1234, 5678);
}

test('every owner and mode is restored, in a plain DEST and in a set-group-ID one owned by someone else, with the restore thread and without', { timeout: 120_000 }, async () => {
  const src = path.join(scratch.dir, 'src');
  makeTree(src);
  const archive = await Archive.initialise(new OrderedBackend(new MemoryBackend(new MemoryStore(1024 * 1024))), async () => 'p', { kdf: { N: 1024, r: 8, p: 1 } });
  try {
    const result = await snapshotTree(archive, [src], { tag: 't', workers: 1 });
    const root = await resolveEntry(archive, result.record, [], 't');
    const expected = walkTree(src);
    for (const thread of [true, false]) {
      const plain = path.join(scratch.dir, `plain-${thread}`);
      await new Extractor(archive, { thread }).extract(root, plain);
      assertSameTree(walkTree(plain), expected);
      // A DEST that was there, someone else's, set-group-ID: its new entries get its group, not root's.
      const shared = path.join(scratch.dir, `setgid-${thread}`);
      mkdirSync(shared);
      if (asRoot) chownSync(shared, 1111, 2222);
      chmodSync(shared, 0o2777);
      await new Extractor(archive, { thread }).extract(root, shared);
      assertSameTree(walkTree(shared), expected);
      assert.equal(statSync(path.join(shared, 'd0', 'f0')).gid, asRoot ? 0 : process.getegid?.());
    }
  } finally {
    await archive.close();
  }
});
