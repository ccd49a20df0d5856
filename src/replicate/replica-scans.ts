import type { Statement } from 'better-sqlite3';
import type { BackendStats } from '../backends/backend.js';
import { ABSENT, PRESENT, UNKNOWN } from './replica-db.js';
import { FULL_TRUST } from './placement.js';
import { countsForTrust, type ReplicaSet } from './replica-set.js';

export interface TrustScanOptions {
  /** A member whose copies do not count (drain). */
  exclude?: number;
  /** Count only members that are not down. */
  reachableOnly?: boolean;
}

export interface MemberCounts {
  blocks: number;
  bytes: number;
  unknown: number;
}

export interface KeyTrust {
  key: string;
  trust: number;
}

/**
 * Whole-set queries over the placement cache, streamed in key order so that
 * memory stays bounded however many blocks there are. A block's trust is
 * computed in SQL through the function `replica_trust(member)`, which reads
 * a snapshot of the members taken before each scan.
 */
export class ReplicaScans {
  private trustById = new Map<number, number>();
  private readonly s: {
    totals: Statement<[], { blocks: number; bytes: number }>;
    perMember: Statement<[], { member: number; status: number; n: number; bytes: number }>;
    shortfall: Statement<[number], { short: number; none: number }>;
    trustBatch: Statement<[string, number], KeyTrust>;
    memberKeys: Statement<[number, string, number], { key: string }>;
    blockCount: Statement<[], { n: number }>;
  };

  constructor(private readonly set: ReplicaSet) {
    const db = set.db.db;
    db.function('replica_trust', { deterministic: false }, (id: unknown) => this.trustById.get(Number(id)) ?? 0);
    const trustOfKey = `coalesce((SELECT sum(replica_trust(p.member)) FROM placements p WHERE p.key = b.key AND p.status = ${PRESENT}), 0)`;
    this.s = {
      totals: db.prepare(`SELECT count(*) AS blocks, coalesce(sum(size), 0) AS bytes FROM blocks b WHERE EXISTS (
        SELECT 1 FROM placements p JOIN members m ON m.id = p.member WHERE p.key = b.key AND p.status = ${PRESENT} AND m.state != 'lost')`),
      perMember: db.prepare(`SELECT p.member AS member, p.status AS status, count(*) AS n, coalesce(sum(b.size), 0) AS bytes
        FROM placements p JOIN blocks b ON b.key = p.key GROUP BY p.member, p.status`),
      shortfall: db.prepare(`SELECT count(*) AS short, coalesce(sum(t = 0), 0) AS none FROM (SELECT ${trustOfKey} AS t FROM blocks b) WHERE t < ?`),
      trustBatch: db.prepare(`SELECT b.key AS key, ${trustOfKey} AS trust FROM blocks b WHERE b.key > ? ORDER BY b.key LIMIT ?`),
      memberKeys: db.prepare(`SELECT key FROM placements WHERE member = ? AND key > ? AND status != ${ABSENT} ORDER BY key LIMIT ?`),
      blockCount: db.prepare('SELECT count(*) AS n FROM blocks'),
    };
  }

  /** stats: blocks with a copy on a member that is not lost, and their bytes. */
  totals(): BackendStats {
    const { blocks, bytes } = this.s.totals.get() as { blocks: number; bytes: number };
    return { blocks, bytes, members: this.set.members().filter((m) => m.state !== 'lost').length };
  }

  /** Per member: blocks and bytes present, and placements whose state is unknown. */
  perMember(): Map<number, MemberCounts> {
    const out = new Map<number, MemberCounts>();
    for (const row of this.s.perMember.all()) {
      const counts = out.get(row.member) ?? { blocks: 0, bytes: 0, unknown: 0 };
      if (row.status === PRESENT) {
        counts.blocks += row.n;
        counts.bytes += row.bytes;
      } else if (row.status === UNKNOWN) {
        counts.unknown += row.n;
      }
      out.set(row.member, counts);
    }
    return out;
  }

  /** How many blocks are short of 100% trust, and how many have no counted copy at all. */
  shortfall(options: TrustScanOptions = {}): { short: number; none: number; blocks: number } {
    this.snapshot(options);
    const { short, none } = this.s.shortfall.get(FULL_TRUST) as { short: number; none: number };
    return { short, none, blocks: (this.s.blockCount.get() as { n: number }).n };
  }

  /** The next `limit` blocks after `after`, in key order, with their trust. */
  trustBatch(after: string, limit: number, options: TrustScanOptions = {}): KeyTrust[] {
    this.snapshot(options);
    return this.s.trustBatch.all(after, limit);
  }

  /** Keys that a member holds or may hold (present or unknown), after `after`, in key order. */
  memberKeys(member: number, after: string, limit: number): string[] {
    return this.s.memberKeys.all(member, after, limit).map((r) => r.key);
  }

  private snapshot(options: TrustScanOptions): void {
    this.trustById = new Map();
    for (const m of this.set.members()) {
      if (!countsForTrust(m) || m.id === options.exclude) continue;
      if (options.reachableOnly === true && this.set.pool.isDown(m.id)) continue;
      this.trustById.set(m.id, m.trust);
    }
  }
}
