/**
 * Snapshot and extract throughput of cairn on a generated tree.
 *
 *     node dist/bench/snapshot.js [SIZE_MB=256] [--identifier 'backend-fs fs DIR'] [--workers N] [--tree DIR]
 *
 * Generates a tree of SIZE_MB (half incompressible, half text-like; big and
 * small files), snapshots it into a fresh fs archive (or the identifier
 * given, which must be empty), snapshots it again unchanged, then extracts
 * it, and prints MB/s for each step. --tree snapshots an existing tree
 * instead (its size is then measured).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Archive } from '../src/archive/archive.js';
import { Extractor } from '../src/archive/extract.js';
import { FileCache } from '../src/archive/file-cache.js';
import { snapshotTree } from '../src/archive/snapshot.js';
import { resolveEntry } from '../src/archive/snapshot-ref.js';

const args = process.argv.slice(2);
const sizeMb = Number(args.find((a) => /^\d+$/.test(a)) ?? 256);
const identifierAt = args.indexOf('--identifier');
const workersAt = args.indexOf('--workers');
const workers = workersAt >= 0 ? Number(args[workersAt + 1]) : undefined;
const treeAt = args.indexOf('--tree');
const givenTree = treeAt >= 0 ? path.resolve(args[treeAt + 1] as string) : null;

function measure(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = measure(full);
      files += sub.files;
      bytes += sub.bytes;
    } else if (e.isFile()) {
      files += 1;
      bytes += statSync(full).size;
    }
  }
  return { files, bytes };
}

const WORDS = Array.from({ length: 4096 }, () => randomBytes(3 + (Math.random() * 8) | 0).toString('base64url'));
function textLike(size: number): Buffer {
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const word = WORDS[(Math.random() * WORDS.length) | 0] as string;
    parts.push(word);
    length += word.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, size);
}

function generate(root: string, bytes: number): number {
  let written = 0;
  let n = 0;
  while (written < bytes) {
    const dir = path.join(root, `d${Math.floor(n / 200)}`);
    mkdirSync(dir, { recursive: true });
    const big = n % 20 < 2; // big files both random (even n) and text-like (odd n)
    const size = Math.min(bytes - written, big ? (8 + Math.random() * 56) * 1024 * 1024 : Math.random() * 200 * 1024) | 0;
    const data = n % 2 === 0 ? randomBytes(size) : textLike(size);
    writeFileSync(path.join(dir, `f${n}.dat`), data);
    written += size;
    n += 1;
  }
  return n;
}

const work = mkdtempSync(path.join(tmpdir(), 'cairn-bench-snapshot-'));
try {
  const tree = givenTree ?? path.join(work, 'tree');
  const measured = givenTree === null ? { files: generate(tree, sizeMb * 1024 * 1024), bytes: sizeMb * 1024 * 1024 } : measure(givenTree);
  const files = measured.files;
  const identifier = identifierAt >= 0 ? (args[identifierAt + 1] as string) : `backend-fs fs ${path.join(work, 'archive')}`;
  const backend = await Archive.connect(identifier);
  const archive = await Archive.initialise(backend, async () => 'bench', { kdf: { N: 1024, r: 8, p: 1 } });
  const cache = FileCache.open(path.join(work, 'cache.sqlite'));
  const mb = measured.bytes / 1024 / 1024;
  const time = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
    const started = process.hrtime.bigint();
    const result = await fn();
    const secs = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`${label.padEnd(28)} ${secs.toFixed(2).padStart(7)} s ${(mb / secs).toFixed(1).padStart(8)} MB/s`);
    return result;
  };
  console.log(`tree: ${files} files, ${mb.toFixed(0)} MiB; archive: ${identifier}; workers: ${workers ?? 'default'}`);
  const first = await time('first snapshot', () => snapshotTree(archive, [tree], { tag: 'bench', cache, ...(workers !== undefined ? { workers } : {}) }));
  console.log(`  uploaded ${first.record.stats.blocksUploaded} blocks, ${(first.record.stats.bytesUploaded / 1048576).toFixed(1)} MiB`);
  await time('unchanged (file cache)', () => snapshotTree(archive, [tree], { tag: 'bench', cache }));
  await time('unchanged (no cache)', () => snapshotTree(archive, [tree], { tag: 'bench' }));
  await time('extract', async () => {
    const entry = await resolveEntry(archive, first.record, [], 'bench');
    return new Extractor(archive).extract(entry, path.join(work, 'out'));
  });
  cache.close();
  await archive.close();
} finally {
  rmSync(work, { recursive: true, force: true });
}
