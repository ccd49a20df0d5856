import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Keeps a long snapshot's resident memory near what it uses (issue 8: under
 * 256 MiB on the 950 MB bench tree, where it reached 390 MiB). Two kinds of
 * memory stay resident after they are free:
 *
 * - glibc keeps memory freed inside its arenas (block-sized buffers, freed
 *   in one thread and another) until malloc_trim gives it back: about
 *   100 MiB at the peak of that run. Node has no call for it: the optional
 *   native module `cairn-malloc-trim` (native/malloc-trim) provides it.
 * - V8 lets the main heap grow to several times what is live (125 MiB
 *   committed for about 20 MiB live) when a full collection now and then
 *   would keep it small.
 *
 * When the resident size is above `aboveBytes` (checked every `checkMs`),
 * a full collection, then a trim, at most every `spacingMs`. Each costs a
 * few milliseconds, and what is trimmed is faulted in again when used: done
 * every 700 ms whatever the size, they cost a first snapshot of the small
 * bench tree 0.1-0.2 s (4-7 %) where it peaked at 230 MiB without them.
 * Above 208 MiB only, the 950 MB tree peaks at 215-222 MiB (bench/NOTES.md,
 * "Fifth pass"). Returns the function that stops it.
 */
export interface KeeperOptions {
  aboveBytes?: number;
  checkMs?: number;
  spacingMs?: number;
}

export function keepMemoryDown({ aboveBytes = 208 * 1024 * 1024, checkMs = 100, spacingMs = 300 }: KeeperOptions = {}): () => void {
  const trim = loadTrim();
  const collect = exposeGc();
  if (trim === null && collect === null) return () => undefined;
  let last = -Infinity;
  const timer = setInterval(() => {
    if (process.memoryUsage.rss() < aboveBytes) return;
    const now = performance.now();
    if (now - last < spacingMs) return;
    last = now;
    collect?.();
    trim?.();
  }, checkMs);
  timer.unref();
  return () => clearInterval(timer);
}

function loadTrim(): (() => boolean) | null {
  try {
    const addon = createRequire(import.meta.url)('cairn-malloc-trim') as { trim?: () => boolean };
    return typeof addon.trim === 'function' ? addon.trim : null;
  } catch {
    return null; // not built here (an optional dependency): nothing to trim with
  }
}

/** V8's full collection, without starting node with --expose-gc. */
function exposeGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? () => (gc as () => void)() : null;
  } catch {
    return null;
  }
}
