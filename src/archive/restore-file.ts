import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, fstatSync, ftruncateSync, lchownSync, lutimesSync, openSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { displayName } from './tree-entry.js';

/**
 * What a restore sets on an entry once its content is written (extract.ts,
 * and the restore thread for the files it writes). Times are in seconds;
 * `owner` only when the process may give files away (root) and a new entry
 * is not given that owner anyway. `createMode`: a file is created with
 * these permission bits, which are its mode (the umask leaves them all, and
 * it has no set-id or sticky bit), and so needs no chmod.
 */
export interface RestoredMetadata {
  owner?: [uid: number, gid: number];
  mode: number;
  createMode?: number;
  atime: number;
  mtime: number;
}

/**
 * The permission bits a file of `mode` is created with when that is its
 * whole mode under `umask` (probeNewEntry's); undefined when it needs a chmod after (a bit the
 * umask clears, or a set-id or sticky bit, which a chown would clear and so
 * is set last). A new file is otherwise created 0600 until its mode is set.
 * Skipping the chmod (and a chown that changes nothing) made 24,000 files
 * take 0.86-1.44 s (median 0.98) against 1.19-1.61 s (median 1.41) in C
 * (bench/NOTES.md, "Seventeenth pass").
 */
export function createModeOf(mode: number, umask: number): number | undefined {
  const bits = mode & 0o7777;
  return (bits & 0o7000) === 0 && (bits & umask) === 0 ? bits : undefined;
}

/** What a new entry made in a directory gets: its owner, and the permission bits the creation takes away (the umask, or a default ACL's mask). */
export interface NewEntry {
  owner: [uid: number, gid: number];
  umask: number;
}

/**
 * What a new entry gets in `dir`, from a probe file made there (mode 0777,
 * empty) and removed at once: the process's owner, or the directory's group
 * where it is set-group-ID or the file system gives new files their
 * directory's group; and the bits taken from 0777, which the umask takes or,
 * under a default ACL, the ACL (either way a mask, so the same for every
 * mode). A restore's own directories pass the same on to what is made in
 * them. Null when the probe cannot be made: every entry then gets its
 * chown and chmod.
 */
export function probeNewEntry(dir: string): NewEntry | null {
  const probe = path.join(dir, `.cairn-tmp-${randomBytes(6).toString('hex')}`);
  let fd: number;
  try {
    fd = openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o777);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    return { owner: [st.uid, st.gid], umask: 0o777 & ~st.mode };
  } catch {
    return null;
  } finally {
    closeSync(fd);
    discardPartial(Buffer.from(probe));
  }
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
  if (kind !== 'symlink' && meta.createMode === undefined) attempt('mode', () => chmodSync(target, meta.mode & 0o7777));
  attempt('times', () => lutimesSync(target, meta.atime, meta.mtime));
}

/** A new file for a restore to write: never an existing one, never through a symbolic link; 0600 unless `mode` is its final mode (createModeOf). */
export function createRestoredFile(target: Buffer, mode = 0o600): number {
  return openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
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

/** Writes a file held whole in memory (one block) into a new file at `target`, holes included, created with `mode`. */
export function writeWholeFile(target: Buffer, data: Buffer, mode?: number): void {
  const fd = createRestoredFile(target, mode);
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
