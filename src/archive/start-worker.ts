import { Worker } from 'node:worker_threads';

/**
 * The young generation of each of cairn's worker threads, in MiB: their
 * objects are few and short-lived (their data lives in ArrayBuffers outside
 * the heap), and V8's default (3 x 16 MiB semi-spaces) cost about 50 MiB of
 * peak RSS on a 950 MB snapshot for no speed (bench/NOTES.md).
 */
const YOUNG_GENERATION_MB = 8;

/** The worker threads' modules, beside this one in dist/src/archive. */
export type WorkerModule = 'block-worker.js' | 'listing-worker.js' | 'restore-worker.js';

/** Starts one of cairn's worker threads with `workerData`; the caller handles its messages, errors and exit. */
export function startWorker(module: WorkerModule, workerData: unknown): Worker {
  // From this module's directory (dist/src/archive) or from the bundled cairn command's (dist/src/cli): both lead to it.
  return new Worker(new URL(`../archive/${module}`, import.meta.url), {
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    workerData,
  });
}
