import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Archive } from './archive.js';
import { BlockWriter, named } from './block-writer.js';
import { Chunker, chunkSizes, gearTable } from './chunker.js';
import { indexChunks } from './content.js';
import type { ContentRef } from './content-ref.js';
import type { FileCache } from './file-cache.js';
import { engineWorkers, makeEngine, type BlockEngine, type EngineOptions } from './block-engine.js';
import { PendingEngine } from './pending-engine.js';
import { maxPlaintext } from './format.js';
import { BackendError } from '../backends/errors.js';
import type { Backend } from '../backends/backend.js';
import { writeSnapshotRecord, type SnapshotRecord, type SnapshotStats } from './snapshot-record.js';
import { TreeWriter, type TreeProgress } from './tree-writer.js';
import { ListingThread } from './listing-thread.js';
import { listingThreadByDefault } from './worker-prestart.js';
import type { Entry } from './tree-entry.js';
import type { Rule } from './rules.js';
import type { WriteStats } from './block-writer.js';

export interface SnapshotOptions {
  tag: string;
  comment?: string;
  /** The regex list: the first matching pattern's decision, or null. */
  include?: (relPath: string, isDir: boolean) => boolean | null;
  /** What `include` decides from, as text: without it, a snapshot with `include` uses no directory memos (directory-memo.ts). */
  includeFingerprint?: string;
  rules?: Rule[];
  excludeAbsolute?: string[];
  cache?: FileCache;
  /** Seal on this many worker threads (default: sealer.ts). */
  workers?: number;
  compression?: 'zstd' | 'none';
  compressionLevel?: number;
  onSkip?: (relPath: string, reason: string) => void;
  /** What went wrong without failing the snapshot (the file cache could not be written, say). */
  onWarning?: (message: string) => void;
  /** Receives the live counters once, to poll for a progress display. */
  onStart?: (progress: TreeProgress, writes: WriteStats) => void;
  /**
   * Whether a thread lists the directories ahead of the walk
   * (listing-thread.ts). Default: yes, unless the environment variable
   * CAIRN_LISTING_THREAD is "0".
   */
  listingThread?: boolean;
  /** A listing thread already started on these paths (the snapshot closes it), instead of one of its own. */
  listings?: ListingThread;
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
  const engine = makeEngine(engineOptions(archive, options));
  return { writer: new BlockWriter(archive.backend, engine), close: () => engine.close() };
}

function engineOptions(archive: Archive, options: SnapshotOptions): EngineOptions {
  return {
    hashKey: archive.keys.blockHash,
    encryptionKey: archive.keys.block,
    compression: options.compression ?? 'zstd',
    level: options.compressionLevel ?? 3,
    chunker: { seed: archive.keys.chunker, sizes: chunkSizes(archive.maxPlaintext) },
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
  };
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
  return startSnapshot(archive.backend, paths, options).finish(archive);
}

/** When a snapshot started before the unlock may begin its walk. */
export interface StartOptions {
  /** The walk begins before `finish` only if this resolves true (and the file cache could take its rows). */
  when?: Promise<boolean>;
  /**
   * The walk begins before `finish` only if the listing thread finds the
   * tree warm (without the thread, it does not begin early). The snapshot
   * command asks for this: on a cold cache the walk's work slows the
   * stretching of the passphrase (the threads share a core's memory
   * bandwidth) more than it gains.
   */
  whenWarm?: boolean;
}

/** A snapshot started before its archive is unlocked (see startSnapshot). */
export interface StartedSnapshot {
  /** Finishes it on the archive unlocked on the backend it was started with. */
  finish(archive: Archive): Promise<SnapshotResult>;
  /** Gives it up (the unlock failed): the walk stops, and nothing was written. */
  abandon(): void;
  /**
   * Resolves true when the walk started before the unlock with the file
   * cache's rows: it then finds unchanged files without the key and may walk
   * the whole tree meanwhile (otherwise it stops at the first files to read).
   */
  walksWithCache: Promise<boolean>;
  /** The walk's live counters (files and directories walked so far). */
  readonly progress: TreeProgress;
}

/** One walk of the tree, with the engine it waits for. */
interface Walk {
  tree: TreeWriter;
  writer: BlockWriter;
  engine: Resolvable<BlockEngine>;
  gear: Resolvable<Int32Array>;
  skippedLog: Array<[string, string]>;
  /** Skips reported before `finish`, held back until then (a walk given up reports none). */
  heldSkips: Array<[string, string]> | null;
  result: Promise<{ root: ContentRef; rootEntry?: Entry }> | null;
}

/** A promise with its settling functions (Promise.withResolvers is Node 22 on). */
interface Resolvable<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

function withResolvers<T>(): Resolvable<T> {
  let resolve!: (value: T | PromiseLike<T>) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A walk given up before the unlock rejects these with no one waiting.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** Whether a snapshot lists its directories on a thread of their own (SnapshotOptions.listingThread). */
export function listingThreadWanted(options: Pick<SnapshotOptions, 'listingThread'>): boolean {
  return options.listingThread ?? listingThreadByDefault();
}

/**
 * Starts a snapshot on `backend` before its archive is unlocked: the walk
 * (listings, lstat, rules, the file cache) needs no key, and stretching the
 * passphrase keeps a pool thread busy for a few hundred ms while this one
 * waits. The walk goes on until it needs the key (a block to name, a file
 * to chunk); `finish` gives it the engine. With a file cache, the walk
 * starts early only when the cache could take its rows before the unlock
 * (FileCache.assume); if those turn out to be another archive's, that walk
 * is given up and the tree walked again. Nothing is written before `finish`.
 */
export function startSnapshot(backend: Backend, paths: string[], options: SnapshotOptions, early: StartOptions = {}): StartedSnapshot {
  const started = Date.now();
  // Asked now, while the passphrase is stretched: the user's name comes through NSS, whose first call on a cold
  // page cache took 38 ms of a cold incremental snapshot's main thread at its commit.
  const user = who();
  const workers = engineWorkers(options);
  const blockLimit = maxPlaintext(backend.info().blockSize);
  const cache = options.cache;
  let finishing = false;
  let abandoned = false;
  /** Without file cache rows every file is read: the listing thread reads small files ahead, and the block worker does not read big ones ahead. */
  const readsEveryFile = !(cache?.hasRows() ?? false);
  const listings = options.listings ?? (listingThreadWanted(options) ? new ListingThread(paths, options.excludeAbsolute, readsEveryFile) : null);
  /** Only the first walk takes the thread's listings: a walk given up and begun again lists for itself. */
  let listingsFor: TreeWriter | null = null;

  const newWalk = (): Walk => {
    const engine = withResolvers<BlockEngine>();
    const gear = withResolvers<Int32Array>();
    const writer = new BlockWriter(backend, new PendingEngine(engine.promise, workers > 0, workers > 0));
    const walk: Walk = {
      writer, engine, gear, skippedLog: [], heldSkips: finishing ? null : [], result: null,
      tree: new TreeWriter({
        writer,
        gear: gear.promise,
        sizes: chunkSizes(blockLimit),
        maxPlaintext: blockLimit,
        cache,
        // The rows `forget` may delete are found while the last files are read, not after the commit.
        onWalked: cache === undefined ? undefined : () => findUnseen(cache, paths),
        include: options.include,
        includeFingerprint: options.includeFingerprint,
        rules: options.rules,
        excludeAbsolute: options.excludeAbsolute,
        onSkip: (path, reason) => {
          if (walk.skippedLog.length < 1000) walk.skippedLog.push([path, reason]);
          if (walk.heldSkips !== null) walk.heldSkips.push([path, reason]);
          else options.onSkip?.(path, reason);
        },
        listings: listingsFor === null && listings !== null ? listings : undefined,
        onCheckpoint: cache === undefined ? undefined : async () => {
          const rows = cache.takeStaged();
          await writer.flush();
          updateCache(cache, options, () => cache.commit(rows));
        },
      }),
    };
    listingsFor ??= walk.tree;
    return walk;
  };
  const run = (walk: Walk): void => {
    walk.result = walk.tree.snapshotPaths(paths);
    walk.result.catch(() => undefined);
  };
  const giveUp = (walk: Walk): void => {
    const reason = new BackendError('internal', 'the snapshot was given up');
    walk.tree.abandon(reason);
    walk.engine.reject(reason);
    walk.gear.reject(reason);
  };

  let walk = newWalk();
  const assumed = cache === undefined ? Promise.resolve(true) : cache.assume();
  const warm = early.whenWarm !== true ? true : listings === null ? false : listings.cold.then((cold) => !cold);
  const ready = Promise.all([assumed, early.when ?? true, warm]).then(([ok, when, isWarm]) => ok && when && isWarm);
  const walksWithCache = ready.then((ok) => {
    if (!ok || abandoned || finishing || walk.result !== null) return false;
    run(walk);
    return cache !== undefined && cache.assumedRows();
  }, () => false);

  return {
    walksWithCache,
    get progress() {
      return walk.tree.progress;
    },
    abandon: () => {
      if (finishing || abandoned) return;
      abandoned = true;
      giveUp(walk);
      listings?.close();
    },
    finish: async (archive) => {
      if (abandoned || finishing) throw new Error('this snapshot was finished or given up already');
      finishing = true;
      // Big files' windows are read ahead only where the worker would wait on the walk: with file cache rows.
      const engine = makeEngine({ ...engineOptions(archive, options), readAhead: !readsEveryFile });
      try {
        await ready.catch(() => false);
        if (cache !== undefined) {
          const present = await cache.use(archive.keys.fingerprint, archive.backend);
          if (cache.assumedWrongly()) {
            giveUp(walk);
            walk = newWalk();
          }
          walk.writer.markPresent(present);
        }
        walk.gear.resolve(gearTable(archive.keys.chunker));
        walk.engine.resolve(engine);
        const current = walk;
        for (const [path, reason] of current.heldSkips ?? []) options.onSkip?.(path, reason);
        current.heldSkips = null;
        options.onStart?.(current.tree.progress, current.writer.stats);
        if (current.result === null) run(current);
        const { root, rootEntry } = await (current.result as Promise<{ root: ContentRef; rootEntry?: Entry }>);
        const rows = cache?.takeStaged();
        const result = await commit(archive, current.writer, options.tag, (previous) => {
          const record: SnapshotRecord = {
            kind: 'tree', root, previous, time: Date.now(), host: hostname(), user, paths: paths.map((p) => resolve(p)),
            comment: options.comment ?? '', stats: stats(current.tree.progress, current.writer.stats, started), skippedLog: current.skippedLog,
          };
          if (rootEntry !== undefined) record.rootEntry = rootEntry;
          return record;
        });
        // The snapshot is stored: a file cache that cannot be written now is a warning, not a failed backup.
        if (cache !== undefined && rows !== undefined) {
          updateCache(cache, options, () => {
            cache.commit(rows);
            cache.forget(paths);
          });
        }
        return result;
      } catch (err) {
        // A walk still listing (the cache's check failed, say) stops instead of walking the rest of the tree.
        giveUp(walk);
        throw err;
      } finally {
        listings?.close();
        await engine.close();
      }
    },
  };
}

/** FileCache.findUnseen; when it fails, `forget` reads the rows itself (and says what failed). */
function findUnseen(cache: FileCache, paths: string[]): void {
  try {
    cache.findUnseen(paths);
  } catch {
    // Nothing is lost: forget looks at every row, as without it.
  }
}

/**
 * Writes to the file cache, which only saves reading unchanged files again:
 * when it fails (its file locked by another program for longer than SQLite
 * waits, a full disk), the snapshot goes on and says so.
 */
function updateCache(cache: FileCache, options: SnapshotOptions, update: () => void): void {
  try {
    update();
  } catch (err) {
    options.onWarning?.(`the file cache ${cache.file} was not updated (${(err as Error).message}): the next snapshot reads these files again`);
  }
}

/** `cairn snapshot-stream`: one byte stream (zfs send, tar …) chunked, deduplicated and sealed like a file. */
export async function snapshotStream(archive: Archive, input: AsyncIterable<Buffer | Uint8Array>, name: string, options: SnapshotOptions): Promise<SnapshotResult> {
  const started = Date.now();
  const { writer, close } = newWriter(archive, options);
  const progress = { files: 1, dirs: 0, bytesRead: 0, bytesCached: 0, skipped: 0, filesReadHere: 0, filesToReadAhead: 0, dirsRecalled: 0, current: name };
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

