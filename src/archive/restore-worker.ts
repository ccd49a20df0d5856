import { parentPort, workerData } from 'node:worker_threads';
import { BackendError, isErrorCode } from '../backends/errors.js';
import { BlockCodec } from './block-codec.js';
import { BlockType } from './format.js';
import { applyMetadata, writeWholeFile } from './restore-file.js';
import { displayName } from './tree-entry.js';
import type { RestoreJob, RestoreReply, RestoreResult } from './restore-thread.js';
import { deferred } from './worker-prestart.js';

/**
 * The restore thread (restore-thread.ts): opens each file's one sealed block
 * (AES-GCM, zstd), writes the file and sets its metadata, while the main
 * thread walks, reads blocks from the archive and writes other files. The
 * calls are synchronous, as on the main thread (extract.ts says why).
 */
interface RestoreWorkerData {
  encryptionKey: Uint8Array;
}

/** Made from the workerData, or, for a worker started before the archive was unlocked (worker-prestart.ts), from the first message. */
let codec: BlockCodec | null = deferred(workerData) ? null : new BlockCodec(Buffer.from((workerData as RestoreWorkerData).encryptionKey));

function restore(codec: BlockCodec, job: RestoreJob): RestoreResult {
  const warnings: Array<[string, string]> = [];
  try {
    const target = Buffer.from(job.path, 'latin1');
    const data = codec.openTransient(job.key, BlockType.data, job.sealed);
    if (data.length !== job.size) {
      throw new BackendError('corrupt', `${displayName(target)}: the archive holds ${data.length} bytes, the entry says ${job.size}`);
    }
    writeWholeFile(target, data, job.meta.createMode);
    applyMetadata(target, job.meta, 'file', (what, message) => warnings.push([what, message]));
    return { id: job.id, warnings };
  } catch (err) {
    const code = err instanceof BackendError && isErrorCode(err.code) ? err.code : undefined;
    return { id: job.id, warnings, error: { message: (err as Error).message, ...(code !== undefined ? { code } : {}) } };
  }
}

parentPort?.on('message', (message: { jobs: RestoreJob[] } | RestoreWorkerData) => {
  if (codec === null) {
    codec = new BlockCodec(Buffer.from((message as RestoreWorkerData).encryptionKey));
    return;
  }
  const reply: RestoreReply = { results: (message as { jobs: RestoreJob[] }).jobs.map((job) => restore(codec as BlockCodec, job)) };
  parentPort?.postMessage(reply);
});
