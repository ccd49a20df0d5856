import { read, readSync } from 'node:fs';
import { nativeReadNowait } from './cold-prefetch.js';

/**
 * Reads the first `length` bytes of an open file (fewer only at its end)
 * into `buffer` at `offset`, without holding the thread on the disk: what
 * the page cache holds is read at once (native/readahead's readNowait); a
 * file not cached yet (on a cold disk, its read-ahead still on its way) is
 * read in libuv's pool, and the thread goes on with other work meanwhile.
 * For the small files a snapshot reads synchronously, one after the other,
 * on a thread that has other work (bench/NOTES.md, "Eleventh pass"). Where
 * the native module is not built (or CAIRN_NO_READ_NOWAIT=1), a plain
 * synchronous read.
 */
export async function readWithoutWaiting(fd: number, buffer: Uint8Array, offset: number, length: number): Promise<number> {
  let size = 0;
  let got = -1;
  while (nativeReadNowait !== null && size < length) {
    got = nativeReadNowait(fd, buffer, offset + size, length - size, size);
    if (got === 0) return size;
    if (got < 0) break;
    size += got;
  }
  if (got === -2) {
    for (let n = -1; n !== 0 && size < length; size += n) n = await readInPool(fd, buffer, offset + size, length - size, size);
    return size;
  }
  for (let n = -1; n !== 0 && size < length; size += n) n = readSync(fd, buffer, offset + size, length - size, size);
  return size;
}

/** fs.read at `position` (libuv's pool), as a promise: the bytes read. */
export function readInPool(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, offset, length, position, (err, bytes) => (err !== null ? reject(err) : resolve(bytes)));
  });
}
