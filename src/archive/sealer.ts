import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackendError } from '../backends/errors.js';
import { BlockCodec, type Compression } from './block-codec.js';
import type { Sealer } from './block-writer.js';
import type { BlockType } from './format.js';

export interface SealerOptions {
  encryptionKey: Buffer;
  compression: Compression;
  level: number;
  /** Worker threads; 0 seals in this thread. Default CAIRN_SEAL_WORKERS or the number of CPUs (at most 4). */
  workers?: number;
}

export function makeSealer(options: SealerOptions): Sealer {
  const fromEnv = process.env.CAIRN_SEAL_WORKERS;
  const workers = options.workers ?? (fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Math.min(4, availableParallelism()));
  if (!Number.isInteger(workers) || workers <= 0) return new InlineSealer(new BlockCodec(options.encryptionKey, options.compression, options.level));
  return new WorkerSealer(options, workers);
}

export class InlineSealer implements Sealer {
  constructor(private readonly codec: BlockCodec) {}

  async seal(key: string, type: BlockType, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.codec.seal(key, type, plaintext);
  }

  async close(): Promise<void> {}
}

interface Job {
  resolve(sealed: Uint8Array): void;
  reject(err: Error): void;
}

/** Seals on worker threads (compression and encryption are the CPU-heavy part of a snapshot). */
class WorkerSealer implements Sealer {
  private readonly workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  private readonly load: number[] = [];
  private nextId = 1;

  constructor(options: SealerOptions, count: number) {
    const url = new URL('./seal-worker.js', import.meta.url);
    for (let i = 0; i < count; i += 1) {
      const worker = new Worker(url, { workerData: { key: options.encryptionKey, compression: options.compression, level: options.level } });
      worker.on('message', (msg: { id: number; sealed?: Uint8Array; error?: string }) => {
        const job = this.jobs.get(msg.id);
        this.jobs.delete(msg.id);
        this.load[i] = (this.load[i] as number) - 1;
        if (job === undefined) return;
        if (msg.sealed !== undefined) job.resolve(msg.sealed);
        else job.reject(new BackendError('internal', `sealing a block failed: ${msg.error ?? 'unknown error'}`));
      });
      worker.on('error', (err) => this.failAll(err));
      this.workers.push(worker);
      this.load.push(0);
    }
  }

  seal(key: string, type: BlockType, plaintext: Uint8Array): Promise<Uint8Array> {
    const id = this.nextId;
    this.nextId += 1;
    let best = 0;
    for (let i = 1; i < this.workers.length; i += 1) if ((this.load[i] as number) < (this.load[best] as number)) best = i;
    this.load[best] = (this.load[best] as number) + 1;
    const copy = new Uint8Array(plaintext);
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      (this.workers[best] as Worker).postMessage({ id, key, type, plaintext: copy }, [copy.buffer]);
    });
  }

  private failAll(err: Error): void {
    for (const job of this.jobs.values()) job.reject(new BackendError('internal', `sealing worker failed: ${err.message}`));
    this.jobs.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
