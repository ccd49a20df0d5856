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
 * ms, so that the unlock goes on as soon as it is done, and ends by itself
 * once its listings come back fast (the cache is warm: the snapshot's own
 * walk, which starts during the unlock too, needs no help then).
 */
export interface WarmUp {
  /** Stops the walk (at the end of the current slice at the latest). */
  stop(): void;
  /** Resolves, once the walk ends or is stopped, with how many directories it listed. */
  listed: Promise<number>;
  /**
   * Resolves once the walk has judged the cache: true when its first
   * listings came back fast (the walk then ends), false when they waited on
   * the disk (or the walk was stopped before it could tell).
   */
  warm: Promise<boolean>;
}

export interface WarmUpOptions {
  /** How long one slice of the walk may hold this thread. */
  sliceMs?: number;
  /** A listing slower than this waited on the disk. */
  coldMicros?: number;
  /** Listings judged at a time: when fewer than a quarter of them waited on the disk, the tree is warm and the walk ends. */
  judgeEvery?: number;
}

/**
 * A listing (readdir) slower than this waited on the disk. On the bench
 * trees here, warm: a median of 22-33 us, 90 % under 51-89 us; with the
 * page cache dropped: a median of 99-106 us.
 */
const COLD_US = 70;

export function warmUp(paths: string[], { sliceMs = 4, coldMicros = COLD_US, judgeEvery = 64 }: WarmUpOptions = {}): WarmUp {
  let stopped = false;
  let judged: (warm: boolean) => void = () => undefined;
  const warmPromise = new Promise<boolean>((resolve) => {
    judged = resolve;
  });
  const walk = async (): Promise<number> => {
    // Nothing before the caller has gone on to the unlock.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const slices = new EventLoopSlices(sliceMs);
    // Names as bytes: a name that is not UTF-8 is walked like any other.
    const pending = paths.map((p) => Buffer.from(path.resolve(p)));
    let listed = 0;
    let slow = 0;
    let warm = false;
    while (!stopped && !warm && pending.length > 0) {
      const dir = pending.pop() as Buffer;
      let names: Buffer[] = [];
      const started = performance.now();
      try {
        names = readdirSync(dir, { encoding: 'buffer' });
        listed += 1;
        if ((performance.now() - started) * 1000 > coldMicros) slow += 1;
        // A warm tree gains nothing from the walk, and the snapshot's own walk wants this thread.
        if (listed % judgeEvery === 0) {
          warm = slow * 4 < judgeEvery;
          judged(warm);
          slow = 0;
        }
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
    // A tree smaller than one judgement is judged on what was listed (a promise settles once).
    judged(!stopped && listed > 0 && slow * 4 < listed);
    return listed;
  };
  return {
    stop: () => {
      stopped = true;
    },
    listed: walk(),
    warm: warmPromise,
  };
}
