import { BackendError, isBackendError, toBackendError } from '../backends/errors.js';
import type { MemberRow } from './replica-db.js';
import { FULL_TRUST } from './placement.js';
import { countsForTrust, type ReplicaSet } from './replica-set.js';
import { formatTrust } from './block-io.js';

/**
 * Tag locks over the members: taken on the members whose copies count
 * (active, read-only) in a fixed order (by name) and released in reverse.
 * The first member in that order decides races between clients. A member
 * that refuses (another owner holds it) makes the lock fail: the locks
 * already taken are released. Unreachable members are skipped, but the
 * members that granted the lock must hold 100% trust, as for tag writes.
 */
export class ReplicaLocks {
  constructor(private readonly set: ReplicaSet) {}

  private lockers(): MemberRow[] {
    return this.set.members().filter(countsForTrust);
  }

  async lock(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    const taken: MemberRow[] = [];
    let trust = 0;
    const failures: string[] = [];
    for (const m of this.lockers()) {
      let granted: boolean;
      try {
        granted = await this.set.call(m, (b) => b.lockTag(name, owner, ttlSeconds));
      } catch (err) {
        failures.push(`${m.name}: ${toBackendError(err).message}`);
        continue;
      }
      if (!granted) {
        await this.release(name, owner, taken);
        return false;
      }
      taken.push(m);
      trust += m.trust;
    }
    if (trust < FULL_TRUST) {
      await this.release(name, owner, taken);
      throw new BackendError('unavailable', `lockTag ${name}: the members that granted it have only ${formatTrust(trust)}% of the ${FULL_TRUST}% trust needed; failed: ${failures.join('; ') || 'none'}`);
    }
    return true;
  }

  async unlock(name: string, owner: string): Promise<void> {
    let conflict: BackendError | null = null;
    for (const m of [...this.lockers()].reverse()) {
      try {
        await this.set.call(m, (b) => b.unlockTag(name, owner));
      } catch (err) {
        if (isBackendError(err, 'conflict')) conflict ??= err;
        // an unreachable member's lock runs out with its ttl
      }
    }
    if (conflict !== null) throw conflict;
  }

  /** The owner named by the first reachable member in lock order. */
  async owner(name: string): Promise<string | null> {
    let reached = false;
    for (const m of this.lockers()) {
      try {
        const owner = await this.set.call(m, (b) => b.tagLocked(name));
        reached = true;
        if (owner !== null) return owner;
      } catch {
        // try the next
      }
    }
    if (!reached && this.lockers().length > 0) throw new BackendError('unavailable', `tagLocked ${name}: no member is reachable`);
    return null;
  }

  private async release(name: string, owner: string, taken: MemberRow[]): Promise<void> {
    for (const m of [...taken].reverse()) {
      await this.set.call(m, (b) => b.unlockTag(name, owner)).catch(() => undefined);
    }
  }
}
