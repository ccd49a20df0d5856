/**
 * Helpers for the cairn tests: a fresh config + fs archive, a generated tree
 * with every file type, and a tree walk comparing content and metadata.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, symlinkSync, linkSync, writeFileSync, writeSync, chmodSync, lchownSync, lutimesSync, type BigIntStats } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfig } from '../src/cli/cairn/config.js';
import type { CommandContext } from '../src/cli/cairn/context.js';
import { init } from '../src/cli/cairn/init.js';
import { patternBytes } from './support/scratch.js';

export const PASSPHRASE = 'correct horse battery staple';
export const isRoot = process.getuid?.() === 0;

/** A cheap scrypt for test archives (N; the real one is 2^16). */
const TEST_SCRYPT_N = '1024';

/** The built cairn command, for tests that run it as a child process (`process.execPath CAIRN_CLI ...`). */
export const CAIRN_CLI = fileURLToPath(new URL('../src/cli/cairn.js', import.meta.url));

/** Test settings: a cheap scrypt, one sealing worker, the passphrase in the environment. */
export function testEnvironment(): void {
  process.env.CAIRN_PASSPHRASE = PASSPHRASE;
  process.env.CAIRN_TEST_SCRYPT_N = TEST_SCRYPT_N;
  process.env.CAIRN_SEAL_WORKERS = '1';
}

/** The environment of a cairn child process: this one's, with the passphrase and a cheap scrypt, plus `extra`. */
export function cliEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, CAIRN_PASSPHRASE: PASSPHRASE, CAIRN_TEST_SCRYPT_N: TEST_SCRYPT_N, ...extra };
}

/** A config file under `dir` naming `identifier` (default: an fs archive in dir/archive), initialised. */
export async function makeContext(dir: string, identifier = `backend-fs fs ${dir}/archive`, fileCache = ''): Promise<CommandContext> {
  testEnvironment();
  const configFile = path.join(dir, 'config.toml');
  await init({ config: configFile, archive: identifier, fileCache });
  return { configFile, config: defaultConfig(identifier, fileCache), passphrase: {}, kdf: { N: 1024, r: 8, p: 1 } };
}

/** Bytes that compress poorly and are unique to `seed` (so samples can be searched for). */
export function contentOf(length: number, seed: number): Buffer {
  return patternBytes(length, seed);
}

function setMeta(file: string | Buffer, mode: number | null, mtime: number, owner?: [number, number]): void {
  if (owner !== undefined && isRoot) lchownSync(file, owner[0], owner[1]);
  if (mode !== null) chmodSync(file, mode);
  lutimesSync(file, mtime, mtime);
}

/**
 * Every file type cairn handles: nested directories, odd names (spaces, a
 * newline, non-UTF-8 bytes), empty, sparse and multi-chunk files, hard links
 * across directories, symlinks (one dangling), a FIFO, a device (as root),
 * odd modes and owners, and a socket (which must be skipped).
 */
export function makeTree(root: string): { files: Map<string, Buffer>; socket: net.Server } {
  const files = new Map<string, Buffer>();
  mkdirSync(path.join(root, 'dir one/deeper'), { recursive: true });
  mkdirSync(path.join(root, 'second'), { recursive: true });
  const put = (rel: string, data: Buffer, mode = 0o644): void => {
    writeFileSync(path.join(root, rel), data);
    chmodSync(path.join(root, rel), mode);
    files.set(rel, data);
  };
  put('plain.txt', Buffer.from('hello, cairn\n'));
  put('empty', Buffer.alloc(0), 0o600);
  put('dir one/with space.bin', contentOf(100_000, 2), 0o640);
  put('dir one/new\nline', contentOf(3000, 3));
  put('dir one/deeper/big.bin', contentOf(3 * 1024 * 1024 + 12345, 4), 0o755);
  put('second/setuid', contentOf(10, 5), 0o4755);
  const odd = Buffer.concat([Buffer.from(path.join(root, 'second')), Buffer.from('/caf\xe9-', 'latin1'), Buffer.from([0xff, 0xfe])]);
  writeFileSync(odd, contentOf(777, 6));
  // Sparse: 24 MiB with a little data in the middle.
  const sparse = path.join(root, 'sparse.img');
  const fd = openSync(sparse, 'w');
  writeSync(fd, contentOf(5000, 7), 0, 5000, 10 * 1024 * 1024);
  closeSync(fd);
  execFileSync('truncate', ['-s', String(24 * 1024 * 1024), sparse]);
  linkSync(path.join(root, 'plain.txt'), path.join(root, 'second/hard link'));
  linkSync(path.join(root, 'dir one/with space.bin'), path.join(root, 'dir one/deeper/hard2'));
  symlinkSync('../plain.txt', path.join(root, 'dir one/to-plain'));
  symlinkSync('/nonexistent/dangling', path.join(root, 'dangling'));
  execFileSync('mkfifo', [path.join(root, 'second/fifo')]);
  if (isRoot) {
    execFileSync('mknod', [path.join(root, 'second/null-dev'), 'c', '1', '3']);
    lchownSync(path.join(root, 'dir one/with space.bin'), 1234, 5678);
    lchownSync(path.join(root, 'dir one/to-plain'), 4321, 8765);
  }
  const socket = net.createServer().listen(path.join(root, 'second/sock'));
  const mtime = 1_600_000_000.123456;
  setMeta(path.join(root, 'dir one/deeper'), 0o750, mtime);
  setMeta(path.join(root, 'second'), 0o711, mtime + 1);
  setMeta(path.join(root, 'dir one'), null, mtime + 2);
  setMeta(path.join(root, 'dir one/to-plain'), null, mtime + 3);
  setMeta(root, 0o755, mtime + 4);
  return { files, socket };
}

export interface WalkedEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** mtime in nanoseconds; compare trees with assertSameTree, which allows for how Node restores it. */
  mtimeNs: bigint;
  target?: string;
  sha?: string;
  /** For files with several links: the first path (in sorted order) of the same inode. */
  linkGroup?: string;
  rdev?: number;
}

/** Walks a tree into a map from relative path (hex of the name bytes, joined by /) to its metadata and content hash. */
export function walkTree(root: string, options: { skipSockets?: boolean } = {}): Map<string, WalkedEntry> {
  const out = new Map<string, WalkedEntry>();
  const inodes = new Map<bigint, string>();
  const visit = (abs: Buffer, rel: string): void => {
    const st = lstatSync(abs, { bigint: true }) as BigIntStats;
    const entry: WalkedEntry = {
      type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : st.isSocket() ? 'socket' : 'other',
      mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), size: st.isDirectory() ? 0 : Number(st.size), mtimeNs: st.mtimeNs,
    };
    if (entry.type === 'socket' && options.skipSockets === true) return;
    if (entry.type === 'symlink') entry.target = readlinkSync(abs, { encoding: 'buffer' }).toString('hex');
    if (entry.type === 'file') {
      entry.sha = createHash('sha256').update(readFileSync(abs)).digest('hex');
      if (st.nlink > 1n) {
        entry.linkGroup = inodes.get(st.ino) ?? rel;
        if (!inodes.has(st.ino)) inodes.set(st.ino, rel);
      }
    }
    if (entry.type === 'char') entry.rdev = Number(st.rdev);
    if (entry.type === 'symlink') entry.mode = 0;
    out.set(rel, entry);
    if (entry.type === 'dir') {
      for (const name of (readdirSync(abs, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)) {
        visit(Buffer.concat([abs, Buffer.from('/'), name]), `${rel}/${name.toString('hex')}`);
      }
    }
  };
  visit(Buffer.from(root), '');
  return out;
}

/**
 * Node sets file times from floating-point seconds (fs.lutimes), at today's
 * epoch a double resolves about 0.24 µs, and the time set is cut to whole
 * microseconds: a restored mtime lands up to about 1.1 µs before the stored
 * one (1,113 ns at worst over 2,000 times tried; 1,027 ns failed a full run
 * when this slack was 1 µs). Times must agree within two microseconds.
 */
const MTIME_SLACK_NS = 2000n;

/** Asserts that two walked trees hold the same paths, types, metadata and content (mtimes within MTIME_SLACK_NS). */
export function assertSameTree(actual: Map<string, WalkedEntry>, expected: Map<string, WalkedEntry>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), 'the same paths');
  for (const [rel, want] of expected) {
    const got = actual.get(rel) as WalkedEntry;
    const drift = got.mtimeNs - want.mtimeNs;
    assert.ok(drift <= MTIME_SLACK_NS && drift >= -MTIME_SLACK_NS, `entry ${rel}: mtime ${got.mtimeNs} ns, want ${want.mtimeNs} ns`);
    assert.deepEqual({ ...got, mtimeNs: 0n }, { ...want, mtimeNs: 0n }, `entry ${rel}`);
  }
}

/** Every regular file's bytes under `root` (for zero-knowledge scans of an archive). */
export function allFiles(root: string): Array<{ file: string; data: Buffer }> {
  const out: Array<{ file: string; data: Buffer }> = [];
  const visit = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) visit(full);
      else if (e.isFile()) out.push({ file: full, data: readFileSync(full) });
    }
  };
  visit(root);
  return out;
}

/** The block files of an fs archive. */
export function blockFiles(archiveDir: string): string[] {
  return allFiles(path.join(archiveDir, 'blocks')).map((f) => f.file).sort();
}
