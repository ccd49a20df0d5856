import { BackendError } from '../backends/errors.js';

/**
 * Where some bytes live (docs/format.md, "Content"): level 0 names a block
 * holding them; level n ≥ 1 names an index block of level n-1 references.
 * Stored as [level, key as 32 raw bytes].
 */
export interface ContentRef {
  level: number;
  key: string;
}

export function encodeRef(ref: ContentRef): [number, Buffer] {
  return [ref.level, Buffer.from(ref.key, 'hex')];
}

export function decodeRef(value: unknown, what: string): ContentRef {
  if (!Array.isArray(value) || value.length !== 2) throw new BackendError('corrupt', `${what}: malformed content reference`);
  const [level, key] = value as [unknown, unknown];
  if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > 8 || !(key instanceof Uint8Array) || key.length !== 32) {
    throw new BackendError('corrupt', `${what}: malformed content reference`);
  }
  return { level, key: Buffer.from(key).toString('hex') };
}
