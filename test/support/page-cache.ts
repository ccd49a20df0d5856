/**
 * The kernel's page cache, for tests of reading ahead: dropping files from
 * it for real (`dd iflag=nocache`, which is posix_fadvise DONTNEED) and
 * counting which are in it (mincore, through python3's ctypes: Node has no
 * call for it). mincore only looks: unlike a read with RWF_NOWAIT, which
 * starts the kernel's readahead and on a fast disk may return the bytes it
 * just read, it brings nothing in.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './scratch.js';

/** A fresh directory beside the build (dist/), on the checkout's disk: the system temp dir may be a tmpfs, which keeps every page. */
export function diskScratchDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(fileURLToPath(new URL('../..', import.meta.url)), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** argv: an offset, then files; prints how many of the files have the page holding that byte in the page cache. */
const COUNT_CACHED = `
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
offset = int(sys.argv[1]) // mmap.PAGESIZE * mmap.PAGESIZE
cached = 0
for name in sys.argv[2:]:
    fd = os.open(name, os.O_RDONLY)
    addr = libc.mmap(None, mmap.PAGESIZE, 1, 1, fd, offset)  # PROT_READ, MAP_SHARED
    if addr is None or addr == ctypes.c_void_p(-1).value:
        raise OSError(ctypes.get_errno(), "mmap " + name)
    page = ctypes.create_string_buffer(1)
    if libc.mincore(addr, 1, page) != 0:
        raise OSError(ctypes.get_errno(), "mincore " + name)
    cached += page.raw[0] & 1
    libc.munmap(addr, mmap.PAGESIZE)
    os.close(fd)
print(cached)
`;

function countCached(offset: number, files: string[]): number {
  return Number(execFileSync('python3', ['-c', COUNT_CACHED, String(offset), ...files], { encoding: 'utf8' }).trim());
}

/** Whether the page of `file` holding byte `offset` (inside the file) is in the page cache. */
export function pageCached(file: string, offset: number): boolean {
  return countCached(offset, [file]) === 1;
}

/** How many of `files` (none empty) have their first page in the page cache. */
export function cachedFiles(files: string[]): number {
  return countCached(0, files);
}

/** Asks the kernel once to drop `files` (written back already) from the page cache: it drops what it can at that moment. */
export function askToDrop(files: string[]): void {
  for (const file of files) execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/**
 * Syncs `files` and drops them from the page cache. The kernel drops only
 * the pages it can at that moment (one still in another CPU's batch of new
 * pages stays), so it is asked again until none is cached; it throws if
 * they are still there after 20 tries.
 */
export async function dropFromPageCache(files: string[]): Promise<void> {
  execFileSync('sync');
  for (let tries = 0; ; tries += 1) {
    askToDrop(files);
    const cached = cachedFiles(files);
    if (cached === 0) return;
    if (tries === 20) throw new Error(`the kernel kept ${cached} of ${files.length} files in the page cache`);
    await sleep(50);
  }
}
