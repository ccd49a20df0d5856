import { parentPort, workerData } from 'node:worker_threads';
import { BlockCodec, blockKey, type Compression } from './block-codec.js';
import type { BlockType } from './format.js';

/**
 * A worker thread of block-engine.ts: `hash` names a block and keeps it;
 * `seal` compresses and encrypts a kept block and sends it back
 * (transferred); `drop` forgets it.
 */
const data = workerData as { hashKey: Uint8Array; encryptionKey: Uint8Array; compression: Compression; level: number };
const hashKey = Buffer.from(data.hashKey);
const codec = new BlockCodec(Buffer.from(data.encryptionKey), data.compression, data.level);
const held = new Map<number, { key: string; type: BlockType; plaintext: Uint8Array }>();

type Message = { op: 'hash'; id: number; type: BlockType; plaintext: Uint8Array } | { op: 'seal'; id: number } | { op: 'drop'; id: number };

parentPort?.on('message', (msg: Message) => {
  try {
    if (msg.op === 'hash') {
      const key = blockKey(hashKey, msg.type, msg.plaintext);
      held.set(msg.id, { key, type: msg.type, plaintext: msg.plaintext });
      parentPort?.postMessage({ id: msg.id, key });
    } else if (msg.op === 'seal') {
      const block = held.get(msg.id);
      held.delete(msg.id);
      if (block === undefined) throw new Error(`no block ${msg.id} held`);
      const sealed = codec.seal(block.key, block.type, block.plaintext);
      const own = sealed.byteOffset === 0 && sealed.byteLength === sealed.buffer.byteLength;
      const out = own ? sealed : new Uint8Array(sealed);
      parentPort?.postMessage({ id: msg.id, sealed: out }, [out.buffer as ArrayBuffer]);
    } else {
      held.delete(msg.id);
    }
  } catch (err) {
    parentPort?.postMessage({ id: msg.id, error: (err as Error).message });
  }
});
