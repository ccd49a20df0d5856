import { chmodSync, closeSync, constants, ftruncateSync, lchownSync, lutimesSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { displayName } from './tree-entry.js';

/**
 * What a restore sets on an entry once its content is written (extract.ts,
 * and the restore thread for the files it writes). Times are in seconds;
 * `owner` only when the process may give files away (root).
 */
export interface RestoredMetadata {
  owner?: [uid: number, gid: number];
  mode: number;
  atime: number;
  mtime: number;
}

export type RestoredKind = 'file' | 'dir' | 'symlink' | 'special';

/**
 * Owner, mode and times. Synchronous on purpose: on a file or directory
 * just made these only change its inode in memory, and three calls through
 * the thread pool cost the walk several times what the calls themselves do.
 * What cannot be set is a warning (`warn(what, message)`), not a failure.
 */
export function applyMetadata(target: Buffer, meta: RestoredMetadata, kind: RestoredKind, warn: (what: string, message: string) => void): void {
  const attempt = (what: string, set: () => void): void => {
    try {
      set();
    } catch (err) {
      warn(what, (err as Error).message);
    }
  };
  const owner = meta.owner;
  if (owner !== undefined) attempt('owner', () => lchownSync(target, owner[0], owner[1]));
  if (kind !== 'symlink') attempt('mode', () => chmodSync(target, meta.mode & 0o7777));
  attempt('times', () => lutimesSync(target, meta.atime, meta.mtime));
}

/** A new file for a restore to write: never an existing one, never through a symbolic link. */
export function createRestoredFile(target: Buffer): number {
  return openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
}

/**
 * Removes a file this restore created and could not finish (best effort: the
 * failure that stopped it is what the user needs to hear of), so that no
 * file that looks restored is left short or with holes where data was.
 */
export function discardPartial(target: Buffer): void {
  try {
    unlinkSync(target);
  } catch {
    // Gone already, or the directory refuses: the restore's own error says what went wrong.
  }
}

/** Runs a write to `target`; its failure (EFBIG, ENOSPC, EIO: calls on a descriptor, whose errors name no file) says which file. */
export function writingTo<T>(target: Buffer, write: () => T): T {
  try {
    return write();
  } catch (err) {
    throw new Error(`cannot write ${displayName(target)}: ${(err as Error).message}`, { cause: err });
  }
}

const PAGE = 64 * 1024;
const ZERO = Buffer.alloc(PAGE);

/**
 * Writes a block at `position`, leaving holes where whole 64 KiB pages are
 * zero (the caller sets the length when the file ends in one). Returns how
 * far into the block the last byte written ends (0: nothing written).
 */
export function writeSparse(fd: number, block: Buffer, position: number): number {
  let start = -1;
  let end = 0;
  const put = (from: number, to: number): void => {
    for (let at = from; at < to;) at += writeSync(fd, block, at, to - at, position + at);
    end = to;
  };
  for (let i = 0; i < block.length; i += PAGE) {
    const page = block.subarray(i, Math.min(block.length, i + PAGE));
    const zero = page.equals(ZERO.subarray(0, page.length));
    if (!zero && start < 0) start = i;
    if (zero && start >= 0) {
      put(start, i);
      start = -1;
    }
  }
  if (start >= 0) put(start, block.length);
  return end;
}

/** Writes a file held whole in memory (one block) into a new file at `target`, holes included. */
export function writeWholeFile(target: Buffer, data: Buffer): void {
  const fd = createRestoredFile(target);
  try {
    const end = writingTo(target, () => writeSparse(fd, data, 0));
    // A file that ends in a hole gets its length here.
    if (end < data.length) writingTo(target, () => ftruncateSync(fd, data.length));
  } catch (err) {
    discardPartial(target);
    throw err;
  } finally {
    closeSync(fd);
  }
}
