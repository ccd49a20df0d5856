import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** A unique temporary name in `dir`. */
export function tempName(dir: string): string {
  return path.join(dir, `tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
}

/** Writes `data` to a new file (mode 0600) and fsyncs it. Fails if the file exists. */
export async function writeNewFile(file: string, data: Uint8Array): Promise<void> {
  const handle = await fsp.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` atomically: write a temporary file in `tmpDir` (same
 * filesystem), fsync it, rename it over `file`. A crash leaves either the old
 * or the new content under the real name, never a partial one.
 */
export async function replaceFile(file: string, data: Uint8Array, tmpDir: string): Promise<void> {
  const tmp = tempName(tmpDir);
  try {
    await writeNewFile(tmp, data);
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/** fsyncs a directory so that renames and creations in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a file, or null when it does not exist. */
export async function readIfExists(file: string): Promise<Buffer | null> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function mkdirPrivate(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE });
}
