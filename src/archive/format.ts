/**
 * Constants of the archive format, written down in docs/format.md. Changing
 * any of them changes the format: bump FORMAT_VERSION.
 */
export const FORMAT_VERSION = 1;

/** Reserved tags (protocol.md: names starting with `#` belong to the system). */
export const FORMAT_TAG = '#cairn-archive-format';
export const KEY_TAG = '#cairn-key';
export const REPLICA_MEMBER_TAG = '#cairn-replica-member';

/** Block types: hashed with the plaintext into the key, and sealed inside the block. */
export const BlockType = {
  data: 1,
  chunkIndex: 2,
  directory: 3,
  directoryIndex: 4,
  snapshot: 5,
} as const;
export type BlockType = (typeof BlockType)[keyof typeof BlockType];

/** Bytes a sealed block adds to its payload: version, nonce, GCM tag, compression and type bytes. */
export const BLOCK_OVERHEAD = 1 + 12 + 16 + 2;

/** Largest plaintext cairn puts in one block, for a backend's blockSize. */
export function maxPlaintext(blockSize: number): number {
  return Math.min(8 * 1024 * 1024, blockSize - BLOCK_OVERHEAD - 64);
}
