/**
 * Promise wrappers over the ssh2 SFTP requests the sftp store uses. Large
 * reads and writes are split into pieces sent together, so one block costs
 * about one round trip rather than one per piece.
 */
import type { FileEntry, SFTPWrapper, Stats } from 'ssh2';
import { isNoSuchFile, SFTP_STATUS } from './errors.js';

const PIECE = 128 * 1024;

/** Requests waiting for an answer on each connection, failed at once when it is lost. */
const pending = new WeakMap<SFTPWrapper, Set<(err: Error) => void>>();
const lost = new WeakSet<SFTPWrapper>();

/**
 * Marks a connection as lost: every request waiting on it fails with
 * CONNECTION_LOST, and later requests fail at once. (ssh2 buffers a request
 * sent on a closed channel and never answers it.)
 */
export function connectionLost(sftp: SFTPWrapper): void {
  if (lost.has(sftp)) return;
  lost.add(sftp);
  const waiting = pending.get(sftp);
  pending.delete(sftp);
  for (const fail of waiting ?? []) fail(lostError());
}

function lostError(): Error {
  return Object.assign(new Error('connection lost'), { code: SFTP_STATUS.CONNECTION_LOST });
}

function call<T>(sftp: SFTPWrapper, start: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    if (lost.has(sftp)) {
      reject(lostError());
      return;
    }
    let waiting = pending.get(sftp);
    if (waiting === undefined) {
      waiting = new Set();
      pending.set(sftp, waiting);
    }
    const set = waiting;
    set.add(reject);
    try {
      start((err, value) => {
        set.delete(reject);
        if (err) reject(err);
        else resolve(value as T);
      });
    } catch (err) {
      set.delete(reject);
      reject(err);
    }
  });
}

export function stat(sftp: SFTPWrapper, file: string): Promise<Stats | null> {
  return call<Stats>(sftp, (cb) => sftp.stat(file, cb)).catch((err: unknown) => {
    if (isNoSuchFile(err)) return null;
    throw err;
  });
}

export function readdir(sftp: SFTPWrapper, dir: string): Promise<FileEntry[]> {
  return call<FileEntry[]>(sftp, (cb) => sftp.readdir(dir, cb)).catch((err: unknown) => {
    if (isNoSuchFile(err)) return [];
    throw err;
  });
}

/** Creates a directory (0700); false when something already has that name. */
export async function mkdir(sftp: SFTPWrapper, dir: string): Promise<boolean> {
  try {
    await call<void>(sftp, (cb) => sftp.mkdir(dir, { mode: 0o700 }, cb));
    return true;
  } catch (err) {
    if ((await stat(sftp, dir))?.isDirectory() === true) return false;
    throw err;
  }
}

export async function unlink(sftp: SFTPWrapper, file: string): Promise<boolean> {
  try {
    await call<void>(sftp, (cb) => sftp.unlink(file, cb));
    return true;
  } catch (err) {
    if (isNoSuchFile(err)) return false;
    throw err;
  }
}

/** SFTP v3 rename: fails when `to` exists (OpenSSH: link() then unlink(), atomic). */
export function renameNoReplace(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  return call<void>(sftp, (cb) => sftp.rename(from, to, cb));
}

/** posix-rename@openssh.com: replaces `to` atomically. */
export function renameReplace(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  return call<void>(sftp, (cb) => sftp.ext_openssh_rename(from, to, cb));
}

/**
 * Writes a new file (mode 0600; `wx`: fails when it exists), fsyncs it where
 * the server offers fsync@openssh.com, and closes it.
 */
export async function writeNewFile(sftp: SFTPWrapper, file: string, data: Uint8Array, canFsync: boolean): Promise<void> {
  const handle = await call<Buffer>(sftp, (cb) => sftp.open(file, 'wx', { mode: 0o600 }, cb));
  try {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const pieces: Promise<number>[] = [];
    for (let off = 0; off < buf.length; off += PIECE) {
      const len = Math.min(PIECE, buf.length - off);
      pieces.push(call<number>(sftp, (cb) => sftp.write(handle, buf, off, len, off, cb)));
    }
    await Promise.all(pieces);
    if (canFsync) await call<void>(sftp, (cb) => sftp.ext_openssh_fsync(handle, (err) => cb(err)));
  } finally {
    await call<void>(sftp, (cb) => sftp.close(handle, cb)).catch(() => undefined);
  }
}

/** Reads a whole file, or null when it does not exist. */
export async function readFile(sftp: SFTPWrapper, file: string): Promise<Buffer | null> {
  let handle: Buffer;
  try {
    handle = await call<Buffer>(sftp, (cb) => sftp.open(file, 'r', cb));
  } catch (err) {
    if (isNoSuchFile(err)) return null;
    throw err;
  }
  try {
    const size = (await call<Stats>(sftp, (cb) => sftp.fstat(handle, cb))).size;
    const out = Buffer.allocUnsafe(size);
    const pieces: Promise<number>[] = [];
    for (let off = 0; off < size; off += PIECE) pieces.push(readAt(sftp, handle, out, off, Math.min(PIECE, size - off)));
    const got = (await Promise.all(pieces)).reduce((a, b) => a + b, 0);
    return got === size ? out : out.subarray(0, got);
  } finally {
    await call<void>(sftp, (cb) => sftp.close(handle, cb)).catch(() => undefined);
  }
}

/** Fills out[off, off+len) from the file, looping over short reads; stops at end of file. */
async function readAt(sftp: SFTPWrapper, handle: Buffer, out: Buffer, off: number, len: number): Promise<number> {
  let done = 0;
  while (done < len) {
    const n = await call<number>(sftp, (cb) => sftp.read(handle, out, off + done, len - done, off + done, (err, bytesRead) => {
      // ssh2 reports end of file as an error with code 1 (SSH_FX_EOF).
      if (err && (err as { code?: unknown }).code === 1) cb(undefined, 0);
      else cb(err, bytesRead);
    }));
    if (n === 0) break;
    done += n;
  }
  return done;
}
