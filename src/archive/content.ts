import { BackendError } from '../backends/errors.js';
import type { Archive } from './archive.js';
import type { BlockWriter } from './block-writer.js';
import { decodeRef, encodeRef, type ContentRef } from './content-ref.js';
import type { ByteBudget } from './byte-budget.js';
import { BlockType } from './format.js';
import { pack, unpack } from './pack.js';

/** One entry of a chunk index block: a block (or lower index) and the bytes it stands for. */
type IndexEntry = [key: Buffer, size: number];

const ENTRY_BYTES = 48;

/**
 * Turns a list of chunk keys into one reference: a single chunk is its own
 * reference; more go into index blocks, cut where a key's last byte is zero
 * (content-defined, so an insertion changes only the index blocks around it)
 * or where a block would be full, level upon level until one remains.
 */
export async function indexChunks(writer: BlockWriter, chunks: Array<{ key: string; size: number }>, maxPlaintext: number): Promise<ContentRef | null> {
  if (chunks.length === 0) return null;
  // One chunk is its own reference (most files).
  if (chunks.length === 1) return { level: 0, key: (chunks[0] as { key: string }).key };
  let level = 0;
  let entries: IndexEntry[] = chunks.map((c) => [Buffer.from(c.key, 'hex'), c.size]);
  const perBlock = Math.max(2, Math.floor((maxPlaintext - 64) / ENTRY_BYTES));
  while (entries.length > 1) {
    const next: IndexEntry[] = [];
    let group: IndexEntry[] = [];
    let groupSize = 0;
    const close = async (): Promise<void> => {
      const key = await writer.add(BlockType.chunkIndex, pack(group));
      next.push([Buffer.from(key, 'hex'), groupSize]);
      group = [];
      groupSize = 0;
    };
    for (const entry of entries) {
      group.push(entry);
      groupSize += entry[1];
      if (group.length >= perBlock || (entry[0][31] === 0 && group.length > 1)) await close();
    }
    if (group.length > 0) await close();
    entries = next;
    level += 1;
  }
  const only = entries[0] as IndexEntry;
  return { level, key: only[0].toString('hex') };
}

function decodeIndex(data: Buffer, key: string): IndexEntry[] {
  const what = `index block ${key}`;
  const value = unpack(data, what);
  if (!Array.isArray(value)) throw new BackendError('corrupt', `${what} is not a list`);
  for (const entry of value) {
    if (!Array.isArray(entry) || !(entry[0] instanceof Uint8Array) || entry[0].length !== 32 || typeof entry[1] !== 'number') {
      throw new BackendError('corrupt', `${what} holds a malformed entry`);
    }
  }
  return value as IndexEntry[];
}

/** The data blocks behind a reference, in order, with their sizes. */
export async function dataBlocks(archive: Archive, ref: ContentRef): Promise<Array<{ key: string; size: number }>> {
  if (ref.level === 0) return [{ key: ref.key, size: -1 }];
  const entries = decodeIndex(await archive.readBlock(ref.key, BlockType.chunkIndex), ref.key);
  const out: Array<{ key: string; size: number }> = [];
  for (const [key, size] of entries) {
    const hex = Buffer.from(key).toString('hex');
    if (ref.level === 1) out.push({ key: hex, size });
    else out.push(...(await dataBlocks(archive, { level: ref.level - 1, key: hex })));
  }
  return out;
}

export interface ReadContentOptions {
  /** Blocks read ahead of the one being used (default 8). */
  ahead?: number;
  /**
   * Shared by several readers: a block read ahead holds its size of it until
   * the reader has used it and asks for the next one.
   */
  budget?: ByteBudget;
  /** The content's size, for the budget of a reference to one block (whose size no index gives). */
  size?: number;
}

/** A data block as read from the archive, still sealed: `openDataBlock` opens it. */
export interface SealedBlock {
  key: string;
  /** The plaintext's size by the index, -1 for a reference to one block (no index says). */
  size: number;
  sealed: Uint8Array;
}

/**
 * The sealed blocks behind a reference, in order, fetching a few ahead. For
 * a reader that opens each one (`openDataBlock`) and uses it at once, into
 * buffers used again (a restore writing a file): reading ahead then holds
 * the sealed bytes only, and no block-sized buffers are made per block.
 */
export async function* readSealedContent(archive: Archive, ref: ContentRef | null, options: ReadContentOptions = {}): AsyncGenerator<SealedBlock> {
  if (ref === null) return;
  const { ahead = 8, budget } = options;
  const blocks = await dataBlocks(archive, ref);
  const queue: Array<Promise<{ block: SealedBlock; release: () => void }>> = [];
  let next = 0;
  const fill = (): void => {
    while (queue.length < ahead && next < blocks.length) {
      const { key, size } = blocks[next] as { key: string; size: number };
      next += 1;
      const held = budget === undefined ? Promise.resolve(() => undefined) : budget.take(size >= 0 ? size : (options.size ?? 0));
      const job = held.then(async (release) => {
        try {
          return { block: { key, size, sealed: await archive.readSealed(key) }, release };
        } catch (err) {
          release();
          throw err;
        }
      });
      job.catch(() => undefined);
      queue.push(job);
    }
  };
  let using: (() => void) | null = null;
  try {
    fill();
    while (queue.length > 0) {
      const { block, release } = await (queue.shift() as Promise<{ block: SealedBlock; release: () => void }>);
      using = release;
      fill();
      yield block;
      release();
      using = null;
    }
  } finally {
    // Stopped early (a failed write, a reader that returned): what was read ahead gives its share back.
    using?.();
    for (const job of queue) job.then(({ release }) => release(), () => undefined);
  }
}

/**
 * A data block's plaintext, its size checked against the index. `transient`:
 * opened into the codec's own buffers (BlockCodec.openTransient), valid only
 * until the codec's next transient open: use it before anything else runs.
 */
export function openDataBlock(archive: Archive, block: SealedBlock, transient = false): Buffer {
  const data = transient ? archive.codec.openTransient(block.key, BlockType.data, block.sealed) : archive.codec.open(block.key, BlockType.data, block.sealed);
  if (block.size >= 0 && data.length !== block.size) throw new BackendError('corrupt', `block ${block.key} holds ${data.length} bytes, its index says ${block.size}`);
  return data;
}

/** The bytes behind a reference, block by block, fetching a few blocks ahead. */
export async function* readContent(archive: Archive, ref: ContentRef | null, options: ReadContentOptions = {}): AsyncGenerator<Buffer> {
  for await (const block of readSealedContent(archive, ref, options)) yield openDataBlock(archive, block);
}

export { decodeRef, encodeRef };
