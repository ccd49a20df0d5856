import type { Backend } from '../backends/backend.js';
import { MAX_EXISTS_MANY } from '../backends/names.js';
import type { BlockEngine, HeldBlock } from './block-engine.js';
import { BlockType } from './format.js';

export interface WriteStats {
  /** Blocks and sealed bytes put to the archive. */
  blocksUploaded: number;
  bytesUploaded: number;
  /** Blocks (and their plaintext bytes) the archive already had. */
  blocksReused: number;
  bytesReused: number;
}

const BATCH_BLOCKS = 256;
/**
 * A batch goes at 256 blocks or 8 MiB, and at most 16 MiB of plaintext is
 * held between naming and storing (more than a batch: a full batch must be
 * able to go). A big file's held chunks keep the block worker's windows
 * alive: with 16 and 32 MiB, the full tree's first snapshot peaked 5-10 MiB
 * higher, at the same speed (bench/NOTES.md, "Fifteenth pass").
 */
const BATCH_BYTES = 8 * 1024 * 1024;
const MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;

/**
 * Stores blocks with deduplication and without one round trip per block
 * (design.md, "The snapshot layer"; issue 7): blocks are named by the
 * engine, batched, asked about with `existsMany` (at most 4096 keys a call),
 * and only the missing ones are sealed and put, pipelined, with the bytes in
 * flight bounded. `flush` waits for every put, then flushes the backend.
 */
export class BlockWriter {
  readonly stats: WriteStats = { blocksUploaded: 0, bytesUploaded: 0, blocksReused: 0, bytesReused: 0 };
  /** Keys known to be in the archive or on their way there in this session. */
  private seen = new Set<string>();
  private batch: HeldBlock[] = [];
  private batchBytes = 0;
  private inFlightBytes = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly hashing = new Set<Promise<unknown>>();
  private readonly running = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(private readonly backend: Backend, private readonly engine: BlockEngine) {}

  /** True when a buffer handed to `enqueue` may be reused as soon as `enqueue` returns. */
  get copiesInput(): boolean {
    return this.engine.copiesInput;
  }

  /**
   * Marks keys as present (e.g. confirmed by the file cache's check), so they
   * are never asked about again. A set given before any other key is taken
   * as it is (and added to from then on): no copy of its tens of thousands of keys.
   */
  markPresent(keys: Iterable<string>): void {
    if (this.seen.size === 0 && keys instanceof Set) this.seen = keys as Set<string>;
    else for (const key of keys) this.seen.add(key);
  }

  /** Stores a block unless this session or the archive already has it; resolves to its key. */
  async add(type: BlockType, plaintext: Uint8Array): Promise<string> {
    return (await this.enqueue(type, plaintext)).key;
  }

  /**
   * Waits until there is room, takes the block, and returns (without
   * waiting for it) the promise of its key: a file's chunks are named in
   * parallel while it is being read.
   */
  async enqueue(type: BlockType, plaintext: Uint8Array): Promise<{ key: Promise<string> }> {
    this.throwIfFailed();
    while (this.inFlightBytes > MAX_IN_FLIGHT_BYTES) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.throwIfFailed();
    }
    this.inFlightBytes += plaintext.length;
    const job = this.engine.hash(type, plaintext).then((held) => this.accept(held), (err: unknown) => {
      this.fail(err);
      this.release(plaintext.length);
      throw err;
    });
    this.hashing.add(job);
    void job.then(() => this.hashing.delete(job), () => this.hashing.delete(job));
    return { key: job };
  }

  /** The engine, for reading files in its workers (engine.readFile). */
  get fileReader(): BlockEngine['readFile'] {
    return this.engine.readFile;
  }

  /** The engine, for reading batches of small files in its workers (engine.readSmallFiles). */
  get smallFileReader(): BlockEngine['readSmallFiles'] {
    return this.engine.readSmallFiles;
  }

  /** Takes blocks the engine has already named and holds (from engine.readFile); waits while too much is in flight. */
  async adopt(blocks: HeldBlock[]): Promise<string[]> {
    const keys = this.adoptNow(blocks);
    await this.room();
    return keys;
  }

  /** `adopt` without the wait: the caller waits with `room` before it has more blocks named. */
  adoptNow(blocks: HeldBlock[]): string[] {
    this.throwIfFailed();
    for (const held of blocks) this.inFlightBytes += held.size;
    return blocks.map((held) => this.accept(held));
  }

  /** Resolves once the bytes in flight are within bounds again (at once when they are). */
  async room(): Promise<void> {
    while (this.inFlightBytes > MAX_IN_FLIGHT_BYTES) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.throwIfFailed();
    }
  }

  private accept(held: HeldBlock): string {
    if (this.seen.has(held.key)) {
      this.engine.drop(held);
      this.reused(held);
    } else {
      this.seen.add(held.key);
      this.batch.push(held);
      this.batchBytes += held.size;
      if (this.batch.length >= BATCH_BLOCKS || this.batchBytes >= BATCH_BYTES) this.startBatch();
    }
    return held.key;
  }

  /** Waits for every block added so far to be stored, then makes it durable. */
  async flush(): Promise<void> {
    while (this.hashing.size > 0 || this.running.size > 0 || this.batch.length > 0) {
      await Promise.allSettled([...this.hashing]);
      this.startBatch();
      await Promise.allSettled([...this.running]);
    }
    this.throwIfFailed();
    await this.backend.flush();
  }

  private reused(held: HeldBlock): void {
    this.stats.blocksReused += 1;
    this.stats.bytesReused += held.size;
    this.release(held.size);
  }

  private fail(err: unknown): void {
    if (this.failure === null) this.failure = err;
    while (this.waiters.length > 0) (this.waiters.shift() as () => void)();
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private startBatch(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const job = this.store(batch).catch((err: unknown) => this.fail(err));
    this.running.add(job);
    void job.then(() => this.running.delete(job));
  }

  private async store(batch: HeldBlock[]): Promise<void> {
    const present: boolean[] = [];
    try {
      for (let i = 0; i < batch.length; i += MAX_EXISTS_MANY) {
        present.push(...(await this.backend.existsMany(batch.slice(i, i + MAX_EXISTS_MANY).map((p) => p.key))));
      }
    } catch (err) {
      for (const held of batch) {
        this.engine.drop(held);
        this.release(held.size);
      }
      throw err;
    }
    const puts: Promise<void>[] = [];
    for (let i = 0; i < batch.length; i += 1) {
      const held = batch[i] as HeldBlock;
      if (present[i] === true || this.failure !== null) {
        this.engine.drop(held);
        if (present[i] === true) this.reused(held);
        else this.release(held.size);
        continue;
      }
      puts.push(this.engine.seal(held).then(async (sealed) => {
        await this.backend.put(held.key, sealed);
        this.stats.blocksUploaded += 1;
        this.stats.bytesUploaded += sealed.length;
      }).finally(() => this.release(held.size)));
    }
    const results = await Promise.allSettled(puts);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  private release(bytes: number): void {
    this.inFlightBytes -= bytes;
    while ((this.inFlightBytes <= MAX_IN_FLIGHT_BYTES || this.failure !== null) && this.waiters.length > 0) (this.waiters.shift() as () => void)();
  }
}

/** Hands a data chunk to the writer (waiting for room); `chunk` resolves to its key and size once named. */
export async function named(writer: BlockWriter, chunk: Buffer): Promise<{ chunk: Promise<{ key: string; size: number }> }> {
  const { key } = await writer.enqueue(BlockType.data, chunk);
  return { chunk: key.then((k) => ({ key: k, size: chunk.length })) };
}
