import type { Worker } from 'node:worker_threads';
import { startWorker } from './start-worker.js';

/**
 * The listing thread started before the cairn command's modules are loaded
 * (src/cli/cairn.ts): a worker's start (its isolate, Node's bootstrap, its
 * modules) took about 200 ms of a cold no-change snapshot before its first
 * listing, while the main thread was loading its own modules. Started here,
 * it waits for its data (ListingWorkerData, in the first message) and the
 * snapshot's ListingThread adopts it.
 */
let prestarted: { worker: Worker; ended: boolean } | null = null;

/** Starts a listing worker that waits for its data (unless one waits already); returns it. */
export function prestartListingWorker(): Worker {
  if (prestarted !== null) return prestarted.worker;
  const worker = startWorker('listing-worker.js', { deferred: true });
  const started = { worker, ended: false };
  // Until adopted: its failure is the adopter's to see (it starts its own), and it keeps no process alive.
  const end = (): void => {
    started.ended = true;
  };
  worker.on('error', end);
  worker.on('exit', end);
  worker.unref();
  prestarted = started;
  return worker;
}

/** The prestarted listing worker, still waiting for its data (then no longer anyone else's), or null. */
export function takePrestartedListingWorker(): Worker | null {
  const started = prestarted;
  prestarted = null;
  if (started === null || started.ended) return null;
  started.worker.removeAllListeners('error');
  started.worker.removeAllListeners('exit');
  return started.worker;
}
