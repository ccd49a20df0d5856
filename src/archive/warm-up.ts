import { lstatSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

const SLASH = Buffer.from('/');

/**
 * Walks the trees under `paths` (readdir and lstat; nothing is kept) to
 * bring their directories and inodes into the kernel's caches, until the
 * returned function is called. A snapshot runs it while the passphrase is
 * stretched: that takes a few hundred ms of a pool thread, while this
 * thread and the disk have nothing to do, and on a cold cache the walk
 * waits on the disk for most of its time. The walk goes in slices of a few
 * ms, so that the unlock goes on as soon as it is done.
 */
export interface WarmUp {
  /** Stops the walk (at the end of the current slice at the latest). */
  stop(): void;
  /** Resolves, once the walk ends or is stopped, with how many directories it listed. */
  listed: Promise<number>;
}

export function warmUp(paths: string[], sliceMs = 4): WarmUp {
  // Names as bytes: a name that is not UTF-8 is walked like any other.
  const pending = paths.map((p) => Buffer.from(path.resolve(p)));
  let stopped = false;
  let listed = 0;
  let finish = (_count: number): void => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const slice = (): void => {
    const end = performance.now() + sliceMs;
    // At least one directory a slice, however short.
    for (let first = true; !stopped && pending.length > 0 && (first || performance.now() < end); first = false) {
      const dir = pending.pop() as Buffer;
      let names: Buffer[];
      try {
        names = readdirSync(dir, { encoding: 'buffer' });
      } catch {
        continue; // not a directory, or unreadable: the snapshot will say so
      }
      listed += 1;
      for (const name of names) {
        const full = Buffer.concat([dir, SLASH, name]);
        if (lstatSync(full, { throwIfNoEntry: false })?.isDirectory() === true) pending.push(full);
      }
    }
    if (!stopped && pending.length > 0) setImmediate(slice);
    else finish(listed);
  };
  setImmediate(slice);
  return {
    stop: () => {
      stopped = true;
    },
    listed: done,
  };
}
