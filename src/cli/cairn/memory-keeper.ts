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
 * Every `everyMs` a full collection, then a trim. Each costs a few
 * milliseconds; trimming much more often costs page faults (bench/NOTES.md,
 * "Fourth pass"). Returns the function that stops it.
 */
export function keepMemoryDown(everyMs = 700): () => void {
  const trim = loadTrim();
  const collect = exposeGc();
  if (trim === null && collect === null) return () => undefined;
  const timer = setInterval(() => {
    collect?.();
    trim?.();
  }, everyMs);
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
