import type { BlockPage } from '../backend.js';
import { BackendError } from '../errors.js';
import { checkCursor, checkListLimit, isValidKey } from '../names.js';

/** The shard (directory under blocks/) of a key: its first two characters. */
export function shardOf(key: string): string {
  return key.length >= 2 ? key.slice(0, 2) : `${key}_`;
}

export function parseFsCursor(cursor: string | null): { shard: string; key: string } | null {
  if (cursor === null) return null;
  const slash = cursor.indexOf('/');
  const shard = cursor.slice(0, slash);
  const key = cursor.slice(slash + 1);
  if (slash < 1 || !isValidKey(key) || shardOf(key) !== shard) {
    throw new BackendError('badRequest', 'listBlocks cursor was not made by this store');
  }
  return { shard, key };
}

/**
 * One page of `listBlocks` over the fs layout (`blocks/SS/KEY`), wherever the
 * directories live (local disk, SFTP). Order: by shard, then by key; the
 * cursor is "SHARD/KEY" of the last key returned, so a key present for the
 * whole listing appears exactly once (protocol.md, listBlocks).
 * `readDir(null)` lists the shards, `readDir(shard)` the keys in one.
 */
export async function listShardedPage(
  readDir: (shard: string | null) => Promise<string[]>,
  cursor: string | null,
  limit: number,
): Promise<BlockPage> {
  const after = parseFsCursor(checkCursor(cursor));
  checkListLimit(limit);
  const shards = (await readDir(null)).filter((s) => after === null || s >= after.shard).sort();
  const keys: string[] = [];
  for (const shard of shards) {
    const names = (await readDir(shard))
      .filter((k) => isValidKey(k) && shardOf(k) === shard && (after === null || shard > after.shard || k > after.key))
      .sort();
    for (const key of names) {
      keys.push(key);
      if (keys.length === limit) return [keys, `${shard}/${key}`];
    }
  }
  return [keys, null];
}
