import { BackendError, toBackendError } from '../backends/errors.js';
import { MEMBER_TAG } from '../backends/membership.js';
import type { MemberRow } from './replica-db.js';
import { FULL_TRUST } from './placement.js';
import { countsForTrust, readable, type ReplicaSet } from './replica-set.js';
import { formatTrust } from './block-io.js';

/**
 * Tags over the members (design.md: "written to every reachable member with
 * a version, so that reading takes the newest; a tag write needs 100% trust
 * among the members that took it").
 *
 * On a member a tag's value is wrapped: "cRT1", a flag byte (0 value,
 * 1 removed), an 8-byte big-endian version, then the value. A removal while
 * some member is unreachable leaves a "removed" record with a newer
 * version, so the stale copy on that member cannot come back.
 */
const MAGIC = Buffer.from('cRT1', 'latin1');
const HEADER = MAGIC.length + 1 + 8;

export interface VersionedTag {
  version: bigint;
  /** Null for a removal record. */
  value: Uint8Array | null;
}

export function encodeTag(tag: VersionedTag): Buffer {
  const header = Buffer.alloc(HEADER);
  MAGIC.copy(header, 0);
  header[MAGIC.length] = tag.value === null ? 1 : 0;
  header.writeBigUInt64BE(tag.version, MAGIC.length + 1);
  return tag.value === null ? header : Buffer.concat([header, tag.value]);
}

/** A member's stored value; one without our header (written directly) counts as version 0. */
export function decodeTag(raw: Uint8Array): VersionedTag {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (buf.byteLength < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC) || (buf[MAGIC.length] ?? 2) > 1) {
    return { version: 0n, value: raw };
  }
  const version = buf.readBigUInt64BE(MAGIC.length + 1);
  return { version, value: buf[MAGIC.length] === 1 ? null : new Uint8Array(buf.subarray(HEADER)) };
}

interface Answer {
  member: MemberRow;
  tag: VersionedTag | null;
}

interface Reading {
  newest: VersionedTag | null;
  answers: Answer[];
  unreachable: MemberRow[];
}

export class ReplicaTags {
  private lastVersion = 0n;

  constructor(private readonly set: ReplicaSet) {}

  async get(name: string): Promise<Uint8Array | null> {
    const reading = await this.read(name);
    await this.heal(name, reading);
    return reading.newest?.value ?? null;
  }

  async put(name: string, value: Uint8Array): Promise<void> {
    refuseMemberTag(name);
    await this.write(name, { version: this.nextVersion(), value }, 'setTag');
  }

  async remove(name: string): Promise<boolean> {
    refuseMemberTag(name);
    const reading = await this.read(name);
    const existed = reading.newest !== null && reading.newest.value !== null;
    if (reading.unreachable.length === 0) {
      const failures: string[] = [];
      await Promise.all(reading.answers.map(async ({ member }) => {
        try {
          await this.set.call(member, (b) => b.removeTag(name));
          this.set.dirty.add(member.id);
        } catch (err) {
          failures.push(`${member.name}: ${toBackendError(err).message}`);
        }
      }));
      if (failures.length === 0) return existed;
    }
    await this.write(name, { version: this.nextVersion(), value: null }, 'removeTag');
    return existed;
  }

  async list(): Promise<string[]> {
    const members = this.set.members().filter(readable);
    const names = new Set<string>();
    let reached = 0;
    await Promise.all(members.map(async (m) => {
      try {
        for (const name of await this.set.call(m, (b) => b.listTags())) names.add(name);
        reached += 1;
      } catch {
        // unreachable: its tags are unknown
      }
    }));
    if (reached === 0 && members.length > 0) throw new BackendError('unavailable', 'no member of the replicated set is reachable');
    names.delete(MEMBER_TAG);
    const live = await Promise.all([...names].map(async (name) => ((await this.read(name)).newest?.value ?? null) !== null));
    return [...names].filter((_, i) => live[i]).sort();
  }

  /** Asks every readable member for the tag; the newest version wins. */
  private async read(name: string): Promise<Reading> {
    const members = this.set.members().filter(readable);
    const answers: Answer[] = [];
    const unreachable: MemberRow[] = [];
    await Promise.all(members.map(async (member) => {
      try {
        const raw = await this.set.call(member, (b) => b.getTag(name));
        answers.push({ member, tag: raw === null ? null : decodeTag(raw) });
      } catch {
        unreachable.push(member);
      }
    }));
    if (answers.length === 0 && members.length > 0) {
      throw new BackendError('unavailable', `tag ${name}: no member of the replicated set is reachable`);
    }
    let newest: VersionedTag | null = null;
    for (const { tag } of answers) {
      if (tag !== null && (newest === null || tag.version > newest.version)) newest = tag;
    }
    if (newest !== null && newest.version > this.lastVersion) this.lastVersion = newest.version;
    return { newest, answers, unreachable };
  }

  /** Brings members holding an older version (or none) up to the newest. */
  private async heal(name: string, reading: Reading): Promise<void> {
    const newest = reading.newest;
    if (newest === null) return;
    const stale = reading.answers.filter(({ member, tag }) => member.state !== 'draining'
      && (tag === null ? newest.value !== null : tag.version < newest.version));
    await Promise.all(stale.map(async ({ member }) => {
      try {
        await this.set.call(member, (b) => b.setTag(name, encodeTag(newest)));
        this.set.dirty.add(member.id);
        this.set.log('info', `tag ${name}: brought member ${member.name} up to date`);
      } catch {
        // healed next time
      }
    }));
  }

  /** Writes a version to every reachable member that is not lost; needs 100% trust among those that took it. */
  private async write(name: string, tag: VersionedTag, op: string): Promise<void> {
    const members = this.set.members().filter(readable);
    const encoded = encodeTag(tag);
    let trust = 0;
    const failures: string[] = [];
    await Promise.all(members.map(async (m) => {
      try {
        await this.set.call(m, (b) => b.setTag(name, encoded));
        this.set.dirty.add(m.id);
        if (countsForTrust(m)) trust += m.trust;
      } catch (err) {
        failures.push(`${m.name}: ${toBackendError(err).message}`);
      }
    }));
    if (trust < FULL_TRUST) {
      const why = failures.length > 0 ? `; failed: ${failures.join('; ')}` : '';
      throw new BackendError('unavailable', `${op} ${name}: the members that took it have only ${formatTrust(trust)}% of the ${FULL_TRUST}% trust needed${why}`);
    }
  }

  /** Versions grow with the clock (microseconds) and never repeat within a process. */
  private nextVersion(): bigint {
    const now = BigInt(Date.now()) * 1000n;
    this.lastVersion = now > this.lastVersion ? now : this.lastVersion + 1n;
    return this.lastVersion;
  }
}

function refuseMemberTag(name: string): void {
  if (name === MEMBER_TAG) {
    throw new BackendError('badRequest', `tag ${MEMBER_TAG} is reserved for the members of a replicated set`);
  }
}
