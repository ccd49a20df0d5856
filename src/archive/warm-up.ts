import { lstatSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { EventLoopSlices } from './event-loop-slices.js';

const SLASH = Buffer.from('/');

/**
 * Walks the trees under `paths` (readdir and lstat; nothing is kept) to
 * bring their directories and inodes into the kernel's caches, until the
 * returned `stop` is called. A snapshot runs it while the passphrase is
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
  let stopped = false;
  const walk = async (): Promise<number> => {
    // Nothing before the caller has gone on to the unlock.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const slices = new EventLoopSlices(sliceMs);
    // Names as bytes: a name that is not UTF-8 is walked like any other.
    const pending = paths.map((p) => Buffer.from(path.resolve(p)));
    let listed = 0;
    while (!stopped && pending.length > 0) {
      const dir = pending.pop() as Buffer;
      let names: Buffer[] = [];
      try {
        names = readdirSync(dir, { encoding: 'buffer' });
        listed += 1;
      } catch {
        // not a directory, or unreadable: the snapshot will say so
      }
      for (const name of names) {
        const full = Buffer.concat([dir, SLASH, name]);
        try {
          if (lstatSync(full).isDirectory()) pending.push(full);
        } catch {
          // gone, or a directory readable but not searchable: the snapshot will say so
        }
      }
      await slices.pause();
    }
    return listed;
  };
  return {
    stop: () => {
      stopped = true;
    },
    listed: walk(),
  };
}
