import { setFlagsFromString } from 'node:v8';
import { optionalNativeFunction } from '../../optional-native.js';

/**
 * Keeps a long snapshot's resident memory near what it uses (issue 8: under
 * 256 MiB on the 950 MB bench tree, where it reached 390 MiB). Two kinds of
 * memory stay resident after they are free:
 *
 * - glibc keeps memory freed inside its arenas (block-sized buffers, freed
 *   in one thread and another) until malloc_trim gives it back: about
 *   100 MiB at the peak of that run. Node has no call for it: the optional
 *   native module `cairn-malloc-trim` (native/malloc-trim) provides it.
 *   When the resident size is above `aboveBytes` (checked every `checkMs`),
 *   a trim, at most every `spacingMs`: what is trimmed is faulted in again
 *   when used, so below that size it does nothing.
 * - V8 lets a heap grow to several times what is live (110 MiB for about
 *   30 MiB live on the main thread of that run) before a full collection.
 *   `--heap-growing-percent=100` has it collect (concurrently, as it does)
 *   once the heap is twice what the last collection kept, unless node was
 *   started with a setting of its own. The keeper used to force a full
 *   collection with each trim instead: some 40 of them on the 950 MB tree,
 *   whose first snapshot took 11.8 s with them and 10.6 s without, for the
 *   same peak (bench/NOTES.md, "Sixth pass"). A fifth (20) kept V8 marking
 *   nearly all the time: 60 full collections of a 15-30 MiB heap in that
 *   tree's first snapshot, against 34 with 100, for a main heap at most
 *   67 MiB either way (bench/NOTES.md, "Twelfth pass").
 *
 * Returns the function that stops the trimming (V8's setting stays).
 */
export interface KeeperOptions {
  aboveBytes?: number;
  checkMs?: number;
  spacingMs?: number;
}

/** How much a V8 heap may grow past what its last full collection kept, in percent. */
const HEAP_GROWING_PERCENT = 100;

export function keepMemoryDown({ aboveBytes = 208 * 1024 * 1024, checkMs = 100, spacingMs = 300 }: KeeperOptions = {}): () => void {
  // Given on node's command line, the user's own setting stays (NODE_OPTIONS refuses V8 flags like this one).
  if (!process.execArgv.some((a) => /heap[-_]growing[-_]percent/.test(a))) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  // Not built here (an optional dependency): nothing to trim with.
  const trim = optionalNativeFunction<() => boolean>('cairn-malloc-trim', 'trim');
  if (trim === null) return () => undefined;
  let last = -Infinity;
  const timer = setInterval(() => {
    if (process.memoryUsage.rss() < aboveBytes) return;
    const now = performance.now();
    if (now - last < spacingMs) return;
    last = now;
    trim();
  }, checkMs);
  timer.unref();
  return () => clearInterval(timer);
}
