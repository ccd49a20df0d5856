import { BackendError } from '../backends/errors.js';
import type { Archive } from './archive.js';
import type { BlockWriter } from './block-writer.js';
import { decodeRef, encodeRef, type ContentRef } from './content-ref.js';
import { BlockType } from './format.js';
import { pack, unpack } from './pack.js';
import { decodeEntry, encodeEntry, type Entry } from './tree-entry.js';

export interface SnapshotStats {
  files: number;
  dirs: number;
  bytesRead: number;
  /** Bytes of files found unchanged in the file cache (not read). */
  bytesCached?: number;
  blocksUploaded: number;
  bytesUploaded: number;
  blocksReused: number;
  bytesReused: number;
  skipped: number;
  durationMs: number;
}

/**
 * A snapshot record (docs/format.md, "Snapshots"): what the tag points to.
 * `kind` is "tree" (root: a directory) or "stream" (root: the bytes of one
 * stream, `size` long, named `name`).
 */
export interface SnapshotRecord {
  kind: 'tree' | 'stream';
  root: ContentRef | null;
  /** tree: the metadata of the directory snapshotted, when it was one directory. */
  rootEntry?: Entry;
  /** stream: its name and length. */
  name?: string;
  size?: number;
  previous: string | null;
  time: number;
  host: string;
  user: string;
  paths: string[];
  comment: string;
  stats: SnapshotStats;
  /** Files left out, with the reason (at most 1000 kept; stats.skipped counts them all). */
  skippedLog: Array<[path: string, reason: string]>;
}

/** Stores a record; the skipped log is shortened until the record fits in one block of `maxPlaintext`. */
export async function writeSnapshotRecord(writer: BlockWriter, record: SnapshotRecord, maxPlaintext = 65536 - 128): Promise<string> {
  const value: Record<string, unknown> = {
    v: 1,
    kind: record.kind,
    root: record.root === null ? null : encodeRef(record.root),
    previous: record.previous === null ? null : Buffer.from(record.previous, 'hex'),
    time: record.time,
    host: record.host,
    user: record.user,
    paths: record.paths,
    comment: record.comment,
    stats: record.stats,
    skipped: record.skippedLog.slice(0, 1000),
  };
  if (record.rootEntry !== undefined) value.rootEntry = encodeEntry(record.rootEntry);
  if (record.name !== undefined) value.name = record.name;
  if (record.size !== undefined) value.size = record.size;
  let packed = pack(value);
  let keep = record.skippedLog.length;
  while (packed.length > maxPlaintext && keep > 0) {
    keep = Math.floor(keep / 2);
    value.skipped = record.skippedLog.slice(0, keep);
    packed = pack(value);
  }
  return writer.add(BlockType.snapshot, packed);
}

export async function readSnapshotRecord(archive: Archive, key: string): Promise<SnapshotRecord> {
  const what = `snapshot ${key}`;
  const r = unpack(await archive.readBlock(key, BlockType.snapshot), what) as Record<string, unknown>;
  if (typeof r !== 'object' || r === null || r.v !== 1 || (r.kind !== 'tree' && r.kind !== 'stream')) throw new BackendError('corrupt', `${what} is malformed`);
  const previous = r.previous instanceof Uint8Array && r.previous.length === 32 ? Buffer.from(r.previous).toString('hex') : null;
  const record: SnapshotRecord = {
    kind: r.kind,
    root: r.root === null ? null : decodeRef(r.root, what),
    previous,
    time: Number(r.time),
    host: String(r.host ?? ''),
    user: String(r.user ?? ''),
    paths: Array.isArray(r.paths) ? r.paths.map(String) : [],
    comment: String(r.comment ?? ''),
    stats: (r.stats ?? {}) as SnapshotStats,
    skippedLog: Array.isArray(r.skipped) ? (r.skipped as Array<[string, string]>) : [],
  };
  if (r.rootEntry !== undefined) record.rootEntry = decodeEntry(r.rootEntry, what);
  if (typeof r.name === 'string') record.name = r.name;
  if (typeof r.size === 'number') record.size = r.size;
  return record;
}
