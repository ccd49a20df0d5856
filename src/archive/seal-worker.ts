import { parentPort, workerData } from 'node:worker_threads';
import { BlockCodec, type Compression } from './block-codec.js';
import type { BlockType } from './format.js';

/** A worker thread of sealer.ts: seals blocks it is sent, returning the sealed bytes (transferred). */
const data = workerData as { key: Uint8Array; compression: Compression; level: number };
const codec = new BlockCodec(Buffer.from(data.key), data.compression, data.level);

parentPort?.on('message', (msg: { id: number; key: string; type: BlockType; plaintext: Uint8Array }) => {
  try {
    const sealed = codec.seal(msg.key, msg.type, msg.plaintext);
    const own = sealed.byteOffset === 0 && sealed.byteLength === sealed.buffer.byteLength;
    const out = own ? sealed : new Uint8Array(sealed);
    parentPort?.postMessage({ id: msg.id, sealed: out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort?.postMessage({ id: msg.id, error: (err as Error).message });
  }
});
