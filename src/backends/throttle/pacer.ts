import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';

/**
 * One quota of the throttle (bytes or requests per second), kept as Ugarit
 * planned it: a request is sent once the quota of everything its
 * predecessors moved has elapsed, and answered once its own has elapsed too,
 * both measured on a clock that started when the link was last idle. The time
 * the inner archive spends serving a request therefore counts towards its
 * quota; unused quota is not banked while the link is idle.
 */
export class Pacer {
  /** When (performance.now() ms) the quota of everything charged so far has elapsed. */
  private next = 0;

  constructor(private perSecond: number) {}

  /** 0 means unlimited. */
  get rate(): number {
    return this.perSecond;
  }

  set rate(perSecond: number) {
    this.perSecond = perSecond;
    if (perSecond === 0) this.next = 0;
  }

  /** When a request arriving now may be sent: after its predecessors' quota. */
  turn(now = performance.now()): number {
    return this.perSecond === 0 ? now : Math.max(now, this.next);
  }

  /** Charges `amount` from `from` (or after its predecessors); returns when its quota has elapsed. */
  charge(amount: number, from = performance.now()): number {
    if (this.perSecond === 0) return from;
    const end = Math.max(from, this.next) + (amount * 1000) / this.perSecond;
    this.next = end;
    return end;
  }
}

/** Waits until a time on the performance.now() clock; returns how long it waited (ms). */
export async function waitUntil(time: number): Promise<number> {
  const ms = time - performance.now();
  if (ms <= 0) return 0;
  await sleep(ms);
  return ms;
}
