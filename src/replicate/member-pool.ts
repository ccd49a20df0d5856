import type { Backend, LogLevel } from '../backends/backend.js';
import { BackendError, toBackendError } from '../backends/errors.js';
import { MEMBER_TAG, memberOf, memberTagValue } from '../backends/membership.js';
import { redactIdentifier } from '../protocol/identifier.js';
import type { MemberRow, ReplicaDb } from './replica-db.js';

/** How long a member that failed is left alone before it is tried again. */
const RETRY_AFTER_MS = 2000;

interface Down {
  until: number;
  reason: string;
}

/**
 * The members' connections, opened lazily through `openArchive` (so a member
 * can be any identifier) and kept open. A member that fails to open, or
 * whose connection fails, is "down" for a short while: its answers count as
 * unknown, never as absent.
 *
 * On first open a member is given this set's membership tag; a member that
 * carries another set's tag is refused, and so is one that joined before but
 * has lost its tag (its archive was wiped or replaced by an empty one).
 */
export class MemberPool {
  private readonly open = new Map<number, Promise<Backend>>();
  private readonly down = new Map<number, Down>();

  constructor(
    private readonly db: ReplicaDb,
    private readonly openArchive: (identifier: string) => Promise<Backend>,
    private readonly log: (level: LogLevel, text: string) => void,
  ) {}

  /** The member's backend; rejects with `unavailable` while it is down. */
  get(member: MemberRow): Promise<Backend> {
    const down = this.down.get(member.id);
    if (down !== undefined && down.until > Date.now()) {
      return Promise.reject(new BackendError('unavailable', `member ${member.name} is unreachable: ${down.reason}`));
    }
    let opening = this.open.get(member.id);
    if (opening === undefined) {
      opening = this.connect(member);
      this.open.set(member.id, opening);
      opening.then(
        () => this.down.delete(member.id),
        (err: unknown) => this.markDown(member, toBackendError(err).message),
      );
    }
    return opening;
  }

  /**
   * Whether the member is known to be unreachable: it failed, and has not
   * answered since (no attempt is made). Its copies do not count where only
   * reachable members count.
   */
  isDown(id: number): boolean {
    return this.down.has(id);
  }

  /** Whether the member failed so recently that it is not tried again yet. */
  resting(id: number): boolean {
    const down = this.down.get(id);
    return down !== undefined && down.until > Date.now();
  }

  /** Why the member is down, if it is. */
  downReason(id: number): string | undefined {
    return this.isDown(id) ? this.down.get(id)?.reason : undefined;
  }

  /** Tries to reach the member now (an open connection is asked for its membership tag); true when it answers as a member. */
  async probe(member: MemberRow): Promise<boolean> {
    let backend: Backend;
    try {
      backend = await this.get(member);
    } catch {
      return false;
    }
    try {
      await this.checkMembership(member, backend);
      return true;
    } catch (err) {
      this.markDown(member, toBackendError(err).message);
      return false;
    }
  }

  /**
   * Reports an error from an operation on the member. Connection-level
   * failures (`unavailable`, `internal`) drop the connection and put the
   * member down for a while; answers like `readOnly` or `tooLarge` do not.
   */
  failed(member: MemberRow, err: unknown): BackendError {
    const error = toBackendError(err);
    if (error.code === 'unavailable' || error.code === 'internal') {
      this.markDown(member, error.message);
    }
    return error;
  }

  /** Forgets every "down" mark, so the next use tries again (admin commands start with this). */
  retryAll(): void {
    this.down.clear();
  }

  /** Closes and forgets one member's connection (when it is retired or lost). */
  async drop(id: number): Promise<void> {
    const opening = this.open.get(id);
    this.open.delete(id);
    this.down.delete(id);
    if (opening !== undefined) await opening.then((b) => b.close()).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((p) => p.then((b) => b.close()).catch(() => undefined)));
  }

  private markDown(member: MemberRow, reason: string): void {
    const first = !this.isDown(member.id);
    this.down.set(member.id, { until: Date.now() + RETRY_AFTER_MS, reason });
    const opening = this.open.get(member.id);
    this.open.delete(member.id);
    if (opening !== undefined) void opening.then((b) => b.close()).catch(() => undefined);
    if (first) this.log('warning', `member ${member.name} is unreachable: ${reason}`);
  }

  private async connect(member: MemberRow): Promise<Backend> {
    const label = redactIdentifier(member.identifier);
    let backend: Backend;
    try {
      backend = await this.openArchive(member.identifier);
    } catch (err) {
      throw new BackendError('unavailable', toBackendError(err).message);
    }
    try {
      await this.checkMembership(member, backend);
    } catch (err) {
      await backend.close().catch(() => undefined);
      throw new BackendError('unavailable', `${label}: ${toBackendError(err).message}`);
    }
    return backend;
  }

  private async checkMembership(member: MemberRow, backend: Backend): Promise<void> {
    const setName = this.db.setName();
    const carried = memberOf(await backend.getTag(MEMBER_TAG));
    if (carried !== undefined && carried !== setName) {
      throw new BackendError('badRequest', `the archive of member ${member.name} belongs to the replicated set ${JSON.stringify(carried)}, not ${JSON.stringify(setName)}`);
    }
    if (carried === undefined) {
      if (member.joined === 1 || this.db.members().find((m) => m.id === member.id)?.joined === 1) {
        throw new BackendError('badRequest', `the archive of member ${member.name} no longer carries the membership tag ${MEMBER_TAG}: it was wiped or replaced by another archive; if its data is gone for good, run "lost ${member.name}"`);
      }
      if (!backend.info().writable) return;
      await backend.setTag(MEMBER_TAG, memberTagValue(setName));
      await backend.flush();
    }
    if (member.joined !== 1) this.db.setJoined(member.id);
  }
}
