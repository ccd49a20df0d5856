import { createHash } from 'node:crypto';
import { BackendError, toBackendError } from '../backends/errors.js';
import { ABSENT, PRESENT, UNKNOWN, type MemberRow, type PlacementStatus } from './replica-db.js';
import { FULL_TRUST, pickForWrite, weightedOrder } from './placement.js';
import { countsForTrust, readable, type ReplicaSet } from './replica-set.js';

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export interface PlaceResult {
  /** Trust of the holders afterwards. */
  trust: number;
  /** Members the block was written to now. */
  added: number[];
  /** Why members that were tried could not take it. */
  failures: string[];
}

export interface PlaceOptions {
  /** A member whose copy does not count and which is not written to (drain). */
  exclude?: number;
  /** Count only holders that are reachable now (re-replicate, drain). */
  reachableOnly?: boolean;
}

type Finding = readonly [member: number, status: PlacementStatus];

/**
 * Blocks over the members (design.md, "Replication with trust weights": put
 * and get). Placements are recorded only for writes that succeeded.
 */
export class BlockIO {
  constructor(private readonly set: ReplicaSet) {}

  /** put: nothing to do when the block already has full trust; otherwise place it on further members. */
  async put(key: string, data: Uint8Array): Promise<void> {
    const db = this.set.db;
    let bytes = data;
    let checksum = sha256(data);
    const known = db.block(key);
    if (known?.sha256 != null && !known.sha256.equals(checksum)) {
      // Put of an existing key is a no-op: further copies must be of the stored bytes.
      const stored = await this.get(key);
      if (stored !== null) {
        bytes = stored;
        checksum = sha256(stored);
      }
    }
    if (this.set.members().length === 0) {
      throw new BackendError('unavailable', 'the replicated set has no members yet: add some with "archive-admin ... add-member"');
    }
    const result = await this.place(key, bytes, checksum);
    if (result.trust < FULL_TRUST) {
      const why = result.failures.length > 0 ? `; failed: ${result.failures.join('; ')}` : '';
      throw new BackendError('unavailable', `block ${key} reached only ${formatTrust(result.trust)}% of the ${FULL_TRUST}% trust it needs (short by ${formatTrust(FULL_TRUST - result.trust)}%): no further writable members${why}. What was stored is recorded; "re-replicate" finishes it`);
    }
  }

  /**
   * Writes the block to further members, picked by weighted random choice
   * among writable active members, until its trust reaches 100%; a member
   * whose write fails is replaced by another.
   */
  async place(key: string, data: Uint8Array, checksum: Buffer, options: PlaceOptions = {}): Promise<PlaceResult> {
    const set = this.set;
    const placements = set.db.placements(key);
    let trust = set.trustOf(placements, options);
    const added: number[] = [];
    const failures: string[] = [];
    if (trust >= FULL_TRUST) return { trust, added, failures };
    const holding = new Set(placements.filter((p) => p.status === PRESENT).map((p) => p.member));
    let candidates = set.members().filter((m) => m.state === 'active' && m.id !== options.exclude
      && !holding.has(m.id) && !set.pool.resting(m.id));
    while (trust < FULL_TRUST && candidates.length > 0) {
      const picks = pickForWrite(candidates, FULL_TRUST - trust, (m) => m.writeWeight);
      if (picks.length === 0) break;
      const pickedIds = new Set(picks.map((m) => m.id));
      candidates = candidates.filter((m) => !pickedIds.has(m.id));
      const outcomes = await Promise.all(picks.map((m) => set.writes.add(async () => {
        try {
          await set.call(m, (b) => b.put(key, data));
          set.dirty.add(m.id);
          return null;
        } catch (err) {
          return toBackendError(err).message;
        }
      })));
      picks.forEach((m, i) => {
        const failure = outcomes[i];
        if (failure === null || failure === undefined) {
          added.push(m.id);
          trust += m.trust;
        } else {
          failures.push(`${m.name}: ${failure}`);
        }
      });
    }
    if (added.length > 0) set.db.recordPut(key, data.byteLength, checksum, added, true);
    return { trust, added, failures };
  }

  /**
   * get: holders in order of read weight; on failure, a missing block or a
   * checksum mismatch, the next holder; then every other readable member.
   * What was found is recorded, and members that returned bad bytes or lost
   * the block get the good copy back.
   */
  async get(key: string): Promise<Uint8Array | null> {
    const set = this.set;
    const known = set.db.block(key);
    const expected = known?.sha256 ?? null;
    const placements = known === undefined ? [] : set.db.placements(key);
    const status = new Map(placements.map((p) => [p.member, p.status]));
    const members = set.members().filter(readable);
    const holders = weightedOrder(members.filter((m) => status.get(m.id) === PRESENT), (m) => m.readWeight);
    const others = weightedOrder(members.filter((m) => status.get(m.id) !== PRESENT), (m) => m.readWeight);
    const findings: Finding[] = [];
    const bad: MemberRow[] = [];
    const missing: MemberRow[] = [];
    const unreachable: string[] = [];
    const best: { data: Uint8Array | null; checksum: Buffer | null } = { data: null, checksum: null };

    const consider = (m: MemberRow, data: Uint8Array | null): boolean => {
      if (data === null) {
        if (status.has(m.id)) findings.push([m.id, ABSENT]);
        if (status.get(m.id) === PRESENT) missing.push(m);
        return false;
      }
      const actual = sha256(data);
      if (expected !== null && !actual.equals(expected)) {
        set.log('warning', `member ${m.name} returned bytes for block ${key} that fail their checksum; repairing it from another copy`);
        bad.push(m);
        return false;
      }
      findings.push([m.id, PRESENT]);
      best.data = data;
      best.checksum = actual;
      return true;
    };

    for (const m of holders) {
      try {
        if (consider(m, await set.call(m, (b) => b.get(key)))) break;
      } catch (err) {
        unreachable.push(`${m.name}: ${toBackendError(err).message}`);
      }
    }
    if (best.data === null) {
      const answers = await Promise.all(others.map((m) => set.call(m, (b) => b.get(key)).then(
        (data) => ({ m, data, error: null }),
        (err: unknown) => ({ m, data: null, error: toBackendError(err).message }),
      )));
      for (const { m, data, error } of answers) {
        if (error !== null) {
          unreachable.push(`${m.name}: ${error}`);
          if (known !== undefined) findings.push([m.id, UNKNOWN]);
        } else if (best.data === null) {
          consider(m, data);
        } else if (data !== null && sha256(data).equals(best.checksum as Buffer)) {
          findings.push([m.id, PRESENT]);
        } else if (data !== null) {
          bad.push(m);
        } else if (status.has(m.id)) {
          findings.push([m.id, ABSENT]);
        }
      }
    }
    const found = best.data;
    const checksum = best.checksum;
    if (found !== null && checksum !== null && (known === undefined || expected === null)) {
      set.db.recordFindings(key, findings, { size: found.byteLength, sha256: checksum });
    } else if (known !== undefined && findings.length > 0) {
      set.db.recordFindings(key, findings);
    }
    if (found !== null && checksum !== null) {
      await this.repair(key, found, checksum, bad, missing);
      return found;
    }
    if (bad.length > 0) {
      throw new BackendError('corrupt', `every copy of block ${key} that could be read fails its checksum (members ${bad.map((m) => m.name).join(', ')})`);
    }
    if (known !== undefined && unreachable.length > 0) {
      throw new BackendError('unavailable', `block ${key} is not on any reachable member (${unreachable.join('; ')})`);
    }
    return null;
  }

  /** Writes the good copy back to members that returned bad bytes or had lost the block. */
  private async repair(key: string, data: Uint8Array, checksum: Buffer, bad: MemberRow[], missing: MemberRow[]): Promise<void> {
    const set = this.set;
    const targets = [...bad.map((m) => ({ m, replace: true })), ...missing.map((m) => ({ m, replace: false }))]
      .filter(({ m }) => countsForTrust(m));
    const repaired: number[] = [];
    await Promise.all(targets.map(({ m, replace }) => set.writes.add(async () => {
      try {
        await set.call(m, async (b) => {
          if (replace) await b.remove(key);
          await b.put(key, data);
        });
        set.dirty.add(m.id);
        repaired.push(m.id);
        set.log('info', `repaired block ${key} on member ${m.name}`);
      } catch (err) {
        set.log('warning', `could not repair block ${key} on member ${m.name}: ${toBackendError(err).message}`);
        if (replace) set.db.removePlacement(key, m.id);
      }
    })));
    if (repaired.length > 0) set.db.recordPut(key, data.byteLength, checksum, repaired, true);
  }

  /** exists from the cache; members are asked only where the cache says unknown. */
  async exists(key: string): Promise<boolean> {
    return (await this.existsMany([key]))[0] as boolean;
  }

  async existsMany(keys: string[]): Promise<boolean[]> {
    const set = this.set;
    const answers: boolean[] = [];
    const toAsk = new Map<number, string[]>();
    keys.forEach((key) => {
      let answer = false;
      if (set.db.block(key) !== undefined) {
        for (const p of set.db.placements(key)) {
          const m = set.memberById(p.member);
          if (m === undefined || !readable(m)) continue;
          if (p.status === PRESENT) answer = true;
          else if (p.status === UNKNOWN) toAsk.set(m.id, [...(toAsk.get(m.id) ?? []), key]);
        }
      }
      answers.push(answer);
    });
    if (toAsk.size === 0) return answers;
    const foundNow = new Set<string>();
    await Promise.all([...toAsk].map(async ([id, asked]) => {
      const m = set.memberById(id) as MemberRow;
      try {
        const present = await set.call(m, (b) => b.existsMany(asked));
        asked.forEach((key, i) => {
          set.db.recordFindings(key, [[id, present[i] === true ? PRESENT : ABSENT]]);
          if (present[i] === true) foundNow.add(key);
        });
      } catch {
        // still unknown
      }
    }));
    return answers.map((a, i) => a || foundNow.has(keys[i] as string));
  }

  /** remove: from every holder; incomplete removal (a holder unreachable) answers unavailable. */
  async remove(key: string): Promise<boolean> {
    const set = this.set;
    if (set.db.block(key) === undefined) return false;
    const placements = set.db.placements(key);
    let existed = placements.some((p) => {
      const m = set.memberById(p.member);
      return p.status === PRESENT && m !== undefined && readable(m);
    });
    const failures: string[] = [];
    await Promise.all(placements.map(async (p) => {
      const m = set.memberById(p.member);
      if (m === undefined || !readable(m)) {
        set.db.removePlacement(key, p.member);
        return;
      }
      try {
        if (await set.call(m, (b) => b.remove(key))) existed = true;
        set.dirty.add(m.id);
        set.db.removePlacement(key, m.id);
      } catch (err) {
        failures.push(`${m.name}: ${toBackendError(err).message}`);
      }
    }));
    if (failures.length > 0) {
      throw new BackendError('unavailable', `block ${key} was removed only from some members; still held by: ${failures.join('; ')}`);
    }
    set.db.forgetBlock(key);
    return existed;
  }
}

export function formatTrust(trust: number): string {
  return Number.isInteger(trust) ? String(trust) : trust.toFixed(1);
}
