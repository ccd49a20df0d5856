import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startWorker, type WorkerModule } from './start-worker.js';

/**
 * Worker threads started before the cairn command's modules are loaded
 * (src/cli/cairn.ts): a worker's start (its isolate, Node's bootstrap, its
 * modules) took about 200 ms of a cold no-change snapshot before the
 * listing thread's first listing, while the main thread was loading its own
 * modules. Started here, a worker waits for its data (its usual
 * workerData, in the first message: see `deferred`) and the first of its
 * kind the command starts adopts it: a snapshot's listing thread, an
 * extract's restore thread.
 */
const prestarted = new Map<WorkerModule, { worker: Worker; ended: boolean; end: () => void }>();

/**
 * Whether a snapshot lists on a thread of its own unless told (SnapshotOptions.listingThread), and whether an
 * extract writes small files on one (ExtractOptions.thread): here, where the command's entry asks too, before
 * it loads the modules that decide.
 */
export function listingThreadByDefault(): boolean {
  return process.env.CAIRN_LISTING_THREAD !== '0';
}

export function restoreThreadByDefault(): boolean {
  return availableParallelism() > 1 && process.env.CAIRN_RESTORE_THREAD !== '0';
}

/** The workerData of a prestarted worker: its data comes in the first message. */
export interface Deferred {
  deferred: true;
}

/** Whether a worker's workerData says its data comes in the first message (prestartWorker). */
export function deferred(workerData: unknown): workerData is Deferred {
  return typeof workerData === 'object' && workerData !== null && (workerData as Partial<Deferred>).deferred === true;
}

/** Starts a worker of `module` that waits for its data (unless one waits already, and has not ended); returns it. */
export function prestartWorker(module: WorkerModule): Worker {
  const waiting = prestarted.get(module);
  if (waiting !== undefined && !waiting.ended) return waiting.worker;
  const deferredData: Deferred = { deferred: true };
  const worker = startWorker(module, deferredData);
  // Until adopted: its failure is the adopter's to see (it starts its own), and it keeps no process alive.
  const started = {
    worker,
    ended: false,
    end: (): void => {
      started.ended = true;
    },
  };
  const { end } = started;
  worker.on('error', end);
  worker.on('exit', end);
  worker.unref();
  prestarted.set(module, started);
  return worker;
}

/**
 * Starts a worker of `module` with `data`, adopting the prestarted one if
 * it still waits (it is sent `data`, and referenced again: the caller
 * unrefs it if it should not keep the process alive).
 */
export function startOrAdoptWorker(module: WorkerModule, data: unknown): Worker {
  const started = prestarted.get(module);
  prestarted.delete(module);
  if (started === undefined || started.ended) return startWorker(module, data);
  started.worker.off('error', started.end);
  started.worker.off('exit', started.end);
  started.worker.ref();
  started.worker.postMessage(data);
  return started.worker;
}
