import { BackendError } from './errors.js';

/**
 * Key and tag-name validation, in one place for every backend
 * (protocol.md, "Operations"): a backend answers badRequest to any other key
 * or name and never turns one into a path.
 */
const KEY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const TAG_PATTERN = /^[A-Za-z0-9._@#-]{1,128}$/;

export const MAX_EXISTS_MANY = 4096;
export const MAX_LIST_LIMIT = 10000;
export const MIN_BLOCK_SIZE = 65536;

export function isValidKey(key: unknown): key is string {
  return typeof key === 'string' && KEY_PATTERN.test(key);
}

export function isValidTagName(name: unknown): name is string {
  return typeof name === 'string' && TAG_PATTERN.test(name);
}

/** Names that start with `#` are reserved for the system. */
export function isReservedTagName(name: string): boolean {
  return name.startsWith('#');
}

export function checkKey(key: unknown): string {
  if (!isValidKey(key)) {
    throw new BackendError('badRequest', `invalid block key ${describe(key)}: 1 to 128 of [A-Za-z0-9._-], not starting with '.' or '-'`);
  }
  return key;
}

export function checkTagName(name: unknown): string {
  if (!isValidTagName(name)) {
    throw new BackendError('badRequest', `invalid tag name ${describe(name)}: 1 to 128 of [A-Za-z0-9._@#-]`);
  }
  return name;
}

/** For user-facing tools: a valid tag name that is not reserved. */
export function checkUserTagName(name: unknown): string {
  const checked = checkTagName(name);
  if (isReservedTagName(checked)) {
    throw new BackendError('badRequest', `tag name ${JSON.stringify(checked)} is reserved (names starting with '#' belong to the system)`);
  }
  return checked;
}

export function checkOwner(owner: unknown): string {
  if (typeof owner !== 'string' || owner.length === 0 || owner.length > 256) {
    throw new BackendError('badRequest', 'lock owner must be a string of 1 to 256 characters');
  }
  return owner;
}

export function checkTtl(ttl: unknown): number {
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > 10 * 365 * 86400) {
    throw new BackendError('badRequest', 'lock ttl must be a non-negative integer number of seconds');
  }
  return ttl;
}

export function checkListLimit(limit: unknown): number {
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new BackendError('badRequest', `listBlocks limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  return limit;
}

export function checkCursor(cursor: unknown): string | null {
  if (cursor === null || cursor === undefined) return null;
  if (typeof cursor !== 'string' || cursor.length > 1024) {
    throw new BackendError('badRequest', 'listBlocks cursor must be a string or nil');
  }
  return cursor;
}

export function checkKeyList(keys: unknown): string[] {
  if (!Array.isArray(keys) || keys.length > MAX_EXISTS_MANY) {
    throw new BackendError('badRequest', `existsMany takes an array of at most ${MAX_EXISTS_MANY} keys`);
  }
  return keys.map(checkKey);
}

export function checkBlockSize(data: Uint8Array, blockSize: number): void {
  if (data.byteLength > blockSize) {
    throw new BackendError('tooLarge', `block of ${data.byteLength} bytes is over the block size of ${blockSize}`);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return typeof value;
}

/** The largest block size a backend may announce: a put must fit in one 64 MiB frame. */
export const MAX_BLOCK_SIZE = 64 * 1024 * 1024 - 4096;
