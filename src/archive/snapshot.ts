import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Archive } from './archive.js';
import { BlockWriter, named } from './block-writer.js';
import { Chunker, chunkSizes, gearTable } from './chunker.js';
import { indexChunks } from './content.js';
import type { ContentRef } from './content-ref.js';
import type { FileCache } from './file-cache.js';
import { makeEngine } from './block-engine.js';
import { writeSnapshotRecord, type SnapshotRecord, type SnapshotStats } from './snapshot-record.js';
import { TreeWriter, type TreeProgress } from './tree-writer.js';
import type { Entry } from './tree-entry.js';
import type { Rule } from './rules.js';
import type { WriteStats } from './block-writer.js';

export interface SnapshotOptions {
  tag: string;
  comment?: string;
  /** The regex list: the first matching pattern's decision, or null. */
  include?: (relPath: string, isDir: boolean) => boolean | null;
  rules?: Rule[];
  excludeAbsolute?: string[];
  cache?: FileCache;
  /** Seal on this many worker threads (default: sealer.ts). */
  workers?: number;
  compression?: 'zstd' | 'none';
  compressionLevel?: number;
  onSkip?: (relPath: string, reason: string) => void;
  /** Receives the live counters once, to poll for a progress display. */
  onStart?: (progress: TreeProgress, writes: WriteStats) => void;
}

export interface SnapshotResult {
  id: string;
  root: ContentRef | null;
  record: SnapshotRecord;
}

function who(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '');
  }
}

function newWriter(archive: Archive, options: SnapshotOptions): { writer: BlockWriter; close: () => Promise<void> } {
  const engine = makeEngine({
    hashKey: archive.keys.blockHash,
    encryptionKey: archive.keys.block,
    compression: options.compression ?? 'zstd',
    level: options.compressionLevel ?? 3,
    chunker: { seed: archive.keys.chunker, sizes: chunkSizes(archive.maxPlaintext) },
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
  });
  return { writer: new BlockWriter(archive.backend, engine), close: () => engine.close() };
}

/**
 * Commits a snapshot record on the tag (design.md: the tag is moved only
 * after a flush has made everything it points to durable), holding the
 * tag's lock while it reads the previous head and moves the tag.
 */
async function commit(archive: Archive, writer: BlockWriter, tag: string, fill: (previous: string | null) => SnapshotRecord): Promise<SnapshotResult> {
  await writer.flush();
  return archive.withTagLock(tag, async () => {
    const current = await archive.getTag(tag);
    const record = fill(current?.head ?? null);
    const id = await writeSnapshotRecord(writer, record, archive.maxPlaintext);
    await writer.flush();
    await archive.setTag(tag, id);
    await archive.backend.flush();
    return { id, root: record.root, record };
  });
}

function stats(progress: TreeProgress, writes: WriteStats, started: number): SnapshotStats {
  return {
    ...writes, files: progress.files, dirs: progress.dirs, bytesRead: progress.bytesRead, bytesCached: progress.bytesCached, skipped: progress.skipped, durationMs: Date.now() - started,
  };
}

/** `cairn snapshot`: snapshots PATHs onto TAG. Unreadable files are logged and skipped. */
export async function snapshotTree(archive: Archive, paths: string[], options: SnapshotOptions): Promise<SnapshotResult> {
  const started = Date.now();
  const { writer, close } = newWriter(archive, options);
  const skippedLog: Array<[string, string]> = [];
  try {
    if (options.cache !== undefined) writer.markPresent(await options.cache.use(archive.keys.fingerprint, archive.backend));
    const cache = options.cache;
    const tree = new TreeWriter({
      writer,
      gear: gearTable(archive.keys.chunker),
      sizes: chunkSizes(archive.maxPlaintext),
      maxPlaintext: archive.maxPlaintext,
      cache,
      include: options.include,
      rules: options.rules,
      excludeAbsolute: options.excludeAbsolute,
      onSkip: (path, reason) => {
        if (skippedLog.length < 1000) skippedLog.push([path, reason]);
        options.onSkip?.(path, reason);
      },
      onCheckpoint: cache === undefined ? undefined : async () => {
        const rows = cache.takeStaged();
        await writer.flush();
        cache.commit(rows);
      },
    });
    options.onStart?.(tree.progress, writer.stats);
    const { root, rootEntry } = await tree.snapshotPaths(paths);
    const rows = cache?.takeStaged();
    const result = await commit(archive, writer, options.tag, (previous) => {
      const record: SnapshotRecord = {
        kind: 'tree', root, previous, time: Date.now(), host: hostname(), user: who(), paths: paths.map((p) => resolve(p)),
        comment: options.comment ?? '', stats: stats(tree.progress, writer.stats, started), skippedLog,
      };
      if (rootEntry !== undefined) record.rootEntry = rootEntry as Entry;
      return record;
    });
    if (cache !== undefined && rows !== undefined) cache.commit(rows);
    return result;
  } finally {
    await close();
  }
}

/** `cairn snapshot-stream`: one byte stream (zfs send, tar …) chunked, deduplicated and sealed like a file. */
export async function snapshotStream(archive: Archive, input: AsyncIterable<Buffer | Uint8Array>, name: string, options: SnapshotOptions): Promise<SnapshotResult> {
  const started = Date.now();
  const { writer, close } = newWriter(archive, options);
  const progress = { files: 1, dirs: 0, bytesRead: 0, bytesCached: 0, skipped: 0, current: name };
  options.onStart?.(progress, writer.stats);
  try {
    const chunker = new Chunker(gearTable(archive.keys.chunker), chunkSizes(archive.maxPlaintext));
    const chunks: Array<Promise<{ key: string; size: number }>> = [];
    for await (const data of rebuffer(input, 8 * 1024 * 1024)) {
      progress.bytesRead += data.length;
      for (const chunk of chunker.push(data)) chunks.push((await named(writer, chunk)).chunk);
    }
    for (const chunk of chunker.end()) chunks.push((await named(writer, chunk)).chunk);
    const root = await indexChunks(writer, await Promise.all(chunks), archive.maxPlaintext);
    return await commit(archive, writer, options.tag, (previous) => ({
      kind: 'stream', root, name, size: progress.bytesRead, previous, time: Date.now(), host: hostname(), user: who(), paths: [],
      comment: options.comment ?? '', stats: stats(progress, writer.stats, started), skippedLog: [],
    }));
  } finally {
    await close();
  }
}

/** Gathers small pieces (a pipe gives 64 KiB) into buffers of about `size` bytes before chunking. */
async function* rebuffer(input: AsyncIterable<Buffer | Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let pieces: Buffer[] = [];
  let length = 0;
  for await (const piece of input) {
    const data = Buffer.isBuffer(piece) ? piece : Buffer.from(piece);
    pieces.push(data);
    length += data.length;
    if (length >= size) {
      yield Buffer.concat(pieces, length);
      pieces = [];
      length = 0;
    }
  }
  if (length > 0) yield Buffer.concat(pieces, length);
}

