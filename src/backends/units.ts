import { UsageError } from './factory.js';
import { MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from './names.js';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Parses a byte count with an optional unit: 512k, 10M, 1G, 2MB (powers of 1024), or plain bytes. */
export function parseByteSize(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?$/.exec(text.trim());
  if (match === null) {
    throw new UsageError(`${what} must be a number of bytes, optionally with a unit (k, M, G): got ${JSON.stringify(text)}`);
  }
  const value = Number(match[1]) * (UNITS[(match[2] ?? '').toLowerCase()] ?? 1);
  if (!Number.isSafeInteger(Math.floor(value))) throw new UsageError(`${what} is too large`);
  return Math.floor(value);
}

export function parseBlockSize(text: string): number {
  const size = parseByteSize(text, 'block size');
  if (size < MIN_BLOCK_SIZE || size > MAX_BLOCK_SIZE) {
    throw new UsageError(`block size must be from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE} bytes`);
  }
  return size;
}

/** Parses a rate in bytes per second: 512k, 10M, 2MB/s, 1.5MiB/s (powers of 1024). */
export function parseByteRate(text: string, what: string): number {
  return parseByteSize(text.trim().replace(/\s*\/\s*s(?:ec)?$/i, ''), what);
}
