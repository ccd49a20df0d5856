/**
 * The restore's writer thread (src/archive/fs-writer.ts): ops run in the
 * order sent, files get their bytes, holes, length and metadata, and
 * failures produced for real (a missing parent directory) reach the right
 * caller: a file's own failure its close, a directory's the whole writer.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { FsWriter } from '../src/archive/fs-writer.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-fswriter-');
after(() => scratch.remove());

function fresh(name: string): string {
  const dir = path.join(scratch.dir, name);
  mkdirSync(dir);
  return dir;
}

const meta = { mode: 0o640, atime: 1_600_000_000, mtime: 1_600_000_100.5 };

test('ops run in order: directory, file with a hole at its end, link and symlink, then directory metadata', async () => {
  const root = fresh('order');
  const dir = Buffer.from(path.join(root, 'd'));
  const file = Buffer.from(path.join(root, 'd', 'f'));
  const warnings: string[] = [];
  const fs = new FsWriter((p, m) => warnings.push(`${p.toString()}: ${m}`));
  try {
    fs.mkdir(dir);
    const id = fs.open(file);
    const head = Buffer.from('hello, ');
    await fs.write(id, head, 0);
    await fs.write(id, Buffer.from('world'), head.length);
    // Two pages of zeros at the end: a hole, and the length set at close.
    await fs.write(id, Buffer.alloc(128 * 1024), head.length + 5);
    await fs.closeFile(id, file, head.length + 5 + 128 * 1024, meta);
    fs.link(file, Buffer.from(path.join(root, 'd', 'g')));
    fs.symlink(Buffer.from('f'), Buffer.from(path.join(root, 'd', 's')), { atime: 1, mtime: 2 });
    fs.meta(dir, { mode: 0o750, atime: 5, mtime: 7 });
    await fs.sync();
    assert.equal(fs.failure, null);
  } finally {
    await fs.close();
  }
  const content = readFileSync(file);
  assert.equal(content.length, 12 + 128 * 1024);
  assert.equal(content.subarray(0, 12).toString(), 'hello, world');
  assert.ok(content.subarray(12).every((b) => b === 0));
  const st = statSync(file);
  assert.equal(st.mode & 0o7777, 0o640);
  assert.equal(st.mtimeMs, 1_600_000_100_500);
  assert.ok(st.blocks * 512 < 128 * 1024, `the zero pages are a hole (${st.blocks} blocks)`);
  assert.equal(statSync(path.join(root, 'd', 'g')).ino, st.ino);
  assert.equal(lstatSync(path.join(root, 'd', 's')).isSymbolicLink(), true);
  assert.equal(statSync(dir).mode & 0o7777, 0o750);
  assert.equal(statSync(dir).mtimeMs, 7000);
  assert.deepEqual(warnings, []);
});

test('a file that cannot be made fails its own close; the writer goes on with other files', async () => {
  const root = fresh('file-fails');
  const fs = new FsWriter(() => undefined);
  try {
    const bad = fs.open(Buffer.from(path.join(root, 'missing', 'f')));
    await fs.sync();
    await assert.rejects(fs.write(bad, Buffer.from('x'), 0), /ENOENT/);
    await assert.rejects(fs.closeFile(bad, Buffer.from(path.join(root, 'missing', 'f')), 1, meta), /ENOENT/);
    const good = fs.open(Buffer.from(path.join(root, 'ok')));
    await fs.write(good, Buffer.from('fine'), 0);
    await fs.closeFile(good, Buffer.from(path.join(root, 'ok')), 4, meta);
    assert.equal(fs.failure, null);
  } finally {
    await fs.close();
  }
  assert.equal(readFileSync(path.join(root, 'ok'), 'utf8'), 'fine');
});

test('a directory that cannot be made fails the writer: later files are refused', async () => {
  const root = fresh('dir-fails');
  const fs = new FsWriter(() => undefined);
  try {
    fs.mkdir(Buffer.from(path.join(root, 'no', 'such', 'parent')));
    await fs.sync();
    assert.match(String(fs.failure?.message), /ENOENT/);
    const id = fs.open(Buffer.from(path.join(root, 'later')));
    await assert.rejects(fs.write(id, Buffer.from('x'), 0), /ENOENT/);
    await assert.rejects(fs.closeFile(id, Buffer.from(path.join(root, 'later')), 1, meta), /ENOENT/);
  } finally {
    await fs.close();
  }
});

test('file data moves to the writer without a copy when the block owns its buffer, and is copied when it does not', async () => {
  const root = fresh('transfer');
  const fs = new FsWriter(() => undefined);
  const owned = Buffer.from(new Uint8Array(64 * 1024).fill(7).buffer);
  const shared = Buffer.from('small, from the pool');
  try {
    const id = fs.open(Buffer.from(path.join(root, 'f')));
    await fs.write(id, owned, 0);
    await fs.write(id, shared, owned.length);
    await fs.closeFile(id, Buffer.from(path.join(root, 'f')), owned.length + shared.length, meta);
  } finally {
    await fs.close();
  }
  assert.equal(owned.length, 0, 'the owned buffer was transferred');
  assert.equal(shared.toString(), 'small, from the pool', 'a view of the shared pool stays usable');
  const content = readFileSync(path.join(root, 'f'));
  assert.equal(content.length, 64 * 1024 + 20);
  assert.equal(content.subarray(64 * 1024).toString(), 'small, from the pool');
});
