import type { Backend } from '../backends/backend.js';
import { MAX_EXISTS_MANY } from '../backends/names.js';
import { blockKey } from './block-codec.js';
import type { BlockType } from './format.js';

/** Seals a block (compress + encrypt): in this thread, or on a pool of workers. */
export interface Sealer {
  seal(key: string, type: BlockType, plaintext: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface WriteStats {
  /** Blocks and sealed bytes put to the archive. */
  blocksUploaded: number;
  bytesUploaded: number;
  /** Blocks (and their plaintext bytes) the archive already had. */
  blocksReused: number;
  bytesReused: number;
}

interface Pending {
  key: string;
  type: BlockType;
  plaintext: Uint8Array;
}

const BATCH_BLOCKS = 512;
const BATCH_BYTES = 48 * 1024 * 1024;
const MAX_IN_FLIGHT_BYTES = 128 * 1024 * 1024;

/**
 * Stores blocks with deduplication and without one round trip per block
 * (design.md, "The snapshot layer"; issue 7): keys are computed at once,
 * batched, asked with `existsMany` (at most 4096 per call), and only the
 * missing blocks are sealed and put, pipelined, with the bytes in flight
 * bounded. `flush` waits for every put, then flushes the backend.
 */
export class BlockWriter {
  readonly stats: WriteStats = { blocksUploaded: 0, bytesUploaded: 0, blocksReused: 0, bytesReused: 0 };
  /** Keys known to be in the archive or on their way there in this session. */
  private readonly seen = new Set<string>();
  private batch: Pending[] = [];
  private batchBytes = 0;
  private inFlightBytes = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly running = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(private readonly backend: Backend, private readonly hashKey: Buffer, private readonly sealer: Sealer) {}

  /** Marks keys as present (e.g. confirmed by the file cache's check), so they are never asked about again. */
  markPresent(keys: Iterable<string>): void {
    for (const key of keys) this.seen.add(key);
  }

  /** The key of a block; stores it unless this session or the archive already has it. Waits when too much is in flight. */
  async add(type: BlockType, plaintext: Uint8Array): Promise<string> {
    this.throwIfFailed();
    const key = blockKey(this.hashKey, type, plaintext);
    if (this.seen.has(key)) {
      this.stats.blocksReused += 1;
      this.stats.bytesReused += plaintext.length;
      return key;
    }
    this.seen.add(key);
    while (this.inFlightBytes > MAX_IN_FLIGHT_BYTES) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.throwIfFailed();
    }
    this.batch.push({ key, type, plaintext });
    this.batchBytes += plaintext.length;
    this.inFlightBytes += plaintext.length;
    if (this.batch.length >= BATCH_BLOCKS || this.batchBytes >= BATCH_BYTES) this.startBatch();
    return key;
  }

  /** Waits for every block added so far to be stored, then makes it durable. */
  async flush(): Promise<void> {
    this.startBatch();
    while (this.running.size > 0) await Promise.all([...this.running]);
    this.throwIfFailed();
    await this.backend.flush();
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private startBatch(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const job = this.store(batch).catch((err: unknown) => {
      if (this.failure === null) this.failure = err;
      this.release(0);
    });
    this.running.add(job);
    void job.then(() => this.running.delete(job));
  }

  private async store(batch: Pending[]): Promise<void> {
    const present: boolean[] = [];
    try {
      for (let i = 0; i < batch.length; i += MAX_EXISTS_MANY) {
        present.push(...(await this.backend.existsMany(batch.slice(i, i + MAX_EXISTS_MANY).map((p) => p.key))));
      }
    } catch (err) {
      for (const item of batch) this.release(item.plaintext.length);
      throw err;
    }
    const puts: Promise<void>[] = [];
    for (let i = 0; i < batch.length; i += 1) {
      const item = batch[i] as Pending;
      if (present[i] === true || this.failure !== null) {
        this.stats.blocksReused += 1;
        this.stats.bytesReused += item.plaintext.length;
        this.release(item.plaintext.length);
        continue;
      }
      puts.push(this.sealer.seal(item.key, item.type, item.plaintext).then(async (sealed) => {
        await this.backend.put(item.key, sealed);
        this.stats.blocksUploaded += 1;
        this.stats.bytesUploaded += sealed.length;
      }).finally(() => this.release(item.plaintext.length)));
    }
    const results = await Promise.allSettled(puts);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  private release(bytes: number): void {
    this.inFlightBytes -= bytes;
    while (this.inFlightBytes <= MAX_IN_FLIGHT_BYTES && this.waiters.length > 0) (this.waiters.shift() as () => void)();
    if (this.failure !== null) while (this.waiters.length > 0) (this.waiters.shift() as () => void)();
  }
}
