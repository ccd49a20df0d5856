import PQueue from 'p-queue';
import type { Backend, LogLevel } from '../backends/backend.js';
import { BackendError } from '../backends/errors.js';
import { MemberPool } from './member-pool.js';
import { PRESENT, type MemberRow, type PlacementRow, type ReplicaDb } from './replica-db.js';

/** Member writes in flight at once, across all blocks. */
const WRITE_CONCURRENCY = 16;

/** States whose copies count towards a block's trust; a draining member is leaving, a lost one is gone. */
export function countsForTrust(m: MemberRow): boolean {
  return m.state === 'active' || m.state === 'read-only';
}

/** States whose copies may be read. */
export function readable(m: MemberRow): boolean {
  return m.state !== 'lost';
}

/**
 * What the parts of the replicated backend share: the SQLite file, the
 * members (re-read when another process changed the file), their
 * connections, the write queue, and which members were written to since
 * the last flush.
 */
export class ReplicaSet {
  readonly pool: MemberPool;
  readonly writes = new PQueue({ concurrency: WRITE_CONCURRENCY });
  /** Members written to since the last flush. */
  readonly dirty = new Set<number>();
  private cached: MemberRow[] = [];

  constructor(
    readonly db: ReplicaDb,
    readonly openArchive: (identifier: string) => Promise<Backend>,
    readonly log: (level: LogLevel, text: string) => void,
  ) {
    this.pool = new MemberPool(db, openArchive, log);
  }

  /** Every member, by name (the fixed order used for locks). */
  members(): MemberRow[] {
    if (this.db.changedElsewhere() || this.cached.length === 0) this.cached = this.db.members();
    return this.cached;
  }

  /** Call after changing members through this process's own connection. */
  reloadMembers(): void {
    this.cached = this.db.members();
  }

  memberById(id: number): MemberRow | undefined {
    return this.members().find((m) => m.id === id);
  }

  memberByName(name: string | undefined): MemberRow {
    const member = this.members().find((m) => m.name === name);
    if (member === undefined) {
      throw new BackendError('badRequest', `no member named ${JSON.stringify(name ?? '')}; members: ${this.members().map((m) => m.name).join(', ') || '(none)'}`);
    }
    return member;
  }

  /**
   * The block's trust: the sum over members holding it whose copies count
   * (active, read-only), leaving out `exclude` and, with `reachableOnly`,
   * members that are down.
   */
  trustOf(placements: readonly PlacementRow[], options: { exclude?: number; reachableOnly?: boolean } = {}): number {
    let trust = 0;
    for (const p of placements) {
      if (p.status !== PRESENT || p.member === options.exclude) continue;
      const m = this.memberById(p.member);
      if (m === undefined || !countsForTrust(m)) continue;
      if (options.reachableOnly === true && this.pool.isDown(m.id)) continue;
      trust += m.trust;
    }
    return trust;
  }

  /** The backend of a member, reporting connection failures to the pool. */
  async call<T>(member: MemberRow, fn: (backend: Backend) => Promise<T>): Promise<T> {
    const backend = await this.pool.get(member);
    try {
      return await fn(backend);
    } catch (err) {
      throw this.pool.failed(member, err);
    }
  }

  names(ids: Iterable<number>): string {
    return [...ids].map((id) => this.memberById(id)?.name ?? `#${id}`).join(', ');
  }
}
