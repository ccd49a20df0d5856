/**
 * The long admin commands that move blocks: re-replicate, drain and lost
 * (design.md, "Replication with trust weights", admin). Each walks the
 * placement cache in key order, a batch at a time, and records its cursor
 * in the `jobs` table after flushing the members it wrote to, so a command
 * that is interrupted (even by SIGKILL) resumes where it stopped when it is
 * run again. Memory stays bounded by the batch size.
 */
import type { AdminResult, LogLevel } from '../backends/backend.js';
import { BackendError, toBackendError } from '../backends/errors.js';
import { MEMBER_TAG } from '../backends/membership.js';
import { sha256, formatTrust } from './block-io.js';
import type { MemberRow } from './replica-db.js';
import { FULL_TRUST } from './placement.js';
import type { ReplicatedBackend } from './replicated-backend.js';

export const BATCH = 256;
/** Blocks of a batch worked on at once. */
const PARALLEL = 16;

/** Runs `fn` on every item, at most `limit` at a time. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Progress notices: the first batch, then at most one a second. */
export class Progress {
  private last = 0;

  constructor(private readonly log: (level: LogLevel, text: string) => void) {}

  tick(text: () => string): void {
    const now = Date.now();
    if (this.last !== 0 && now - this.last < 1000) return;
    this.last = now;
    this.log('info', text());
  }
}

/**
 * Flushes the members written to in a batch before the job's cursor moves
 * on. A member that cannot flush now (it went down after taking its copies)
 * keeps its placements pending and is flushed again later; the job goes on.
 */
export async function flushBatch(backend: ReplicatedBackend, job: string): Promise<void> {
  try {
    await backend.flush();
  } catch (err) {
    backend.set.log('warning', `${job}: ${toBackendError(err).message}; those copies become durable at a later flush`);
  }
}

/** Tries every member that is not lost, so that trust counts only members reachable now. */
export async function probeMembers(backend: ReplicatedBackend): Promise<MemberRow[]> {
  const set = backend.set;
  set.pool.retryAll();
  const members = set.members().filter((m) => m.state !== 'lost');
  const up = await Promise.all(members.map((m) => set.pool.probe(m)));
  return members.filter((_, i) => !up[i]);
}

interface Counters {
  checked: number;
  copied: number;
  short: number;
  noCopy: number;
}

/**
 * Placements another process recorded but never saw flushed (it was killed
 * before its flush): ask the member whether it holds them, flush it, and
 * record the answer. A member that cannot be reached keeps them for later.
 */
async function settleOrphans(backend: ReplicatedBackend): Promise<number> {
  const { set, db } = backend;
  let settled = 0;
  for (const member of set.members().filter((m) => m.state !== 'lost' && !set.pool.isDown(m.id))) {
    try {
      for (;;) {
        const keys = db.orphanPending(member.id, 1000);
        if (keys.length === 0) break;
        const present = await set.call(member, async (b) => {
          const answer = await b.existsMany(keys);
          await b.flush();
          return answer;
        });
        db.settleOrphans(member.id, keys, present);
        settled += keys.length;
      }
    } catch (err) {
      set.log('warning', `re-replicate: could not check unflushed copies on ${member.name}: ${toBackendError(err).message}`);
    }
  }
  return settled;
}

/** re-replicate: brings every block with less than 100% trust among reachable members back to 100%. */
export async function reReplicate(backend: ReplicatedBackend): Promise<AdminResult> {
  const { set, db, scans, blocks } = backend;
  const down = await probeMembers(backend);
  const settled = await settleOrphans(backend);
  if (settled > 0) set.log('info', `re-replicate: checked ${settled} copies that an interrupted process had not flushed`);
  const job = db.startJob('re-replicate');
  const resumed = job.cursor !== null;
  let cursor = job.cursor ?? '';
  const c: Counters = { checked: 0, copied: 0, short: 0, noCopy: 0 };
  const progress = new Progress(set.log);
  const total = scans.shortfall({ reachableOnly: true });
  set.log('info', `re-replicate: ${total.short} of ${total.blocks} blocks are short of ${FULL_TRUST}% trust${resumed ? ` (resuming after ${cursor})` : ''}`);
  for (;;) {
    const batch = scans.trustBatch(cursor, BATCH, { reachableOnly: true });
    if (batch.length === 0) break;
    c.checked += batch.length;
    await forEachLimit(batch.filter((k) => k.trust < FULL_TRUST), PARALLEL, async ({ key }) => {
      let data: Uint8Array | null;
      try {
        data = await blocks.get(key);
      } catch (err) {
        set.log('warning', `re-replicate: block ${key} cannot be read now: ${toBackendError(err).message}`);
        c.short += 1;
        return;
      }
      if (data === null) {
        c.noCopy += 1;
        return;
      }
      const placed = await blocks.place(key, data, sha256(data), { reachableOnly: true });
      c.copied += placed.added.length;
      if (placed.trust < FULL_TRUST) c.short += 1;
    });
    cursor = (batch[batch.length - 1] as { key: string }).key;
    await flushBatch(backend, 're-replicate');
    db.moveJob('re-replicate', cursor);
    progress.tick(() => `re-replicate: ${c.checked} blocks checked, ${c.copied} copies made, ${c.short} still short, ${c.noCopy} with no copy left`);
  }
  db.endJob('re-replicate');
  const data = { ...c, unreachable: down.map((m) => m.name), resumed };
  const lines = [
    `re-replicate: ${c.checked} blocks checked, ${c.copied} copies made`,
    c.short > 0 ? `${c.short} blocks are still short of ${FULL_TRUST}% trust: add members or raise trust, then run re-replicate again` : `every readable block has at least ${FULL_TRUST}% trust among reachable members`,
  ];
  if (c.noCopy > 0) lines.push(`${c.noCopy} blocks have no copy on any member: they are lost`);
  if (down.length > 0) lines.push(`unreachable members (their copies were not counted): ${down.map((m) => m.name).join(', ')}`);
  return { text: lines.join('\n'), data };
}

/**
 * drain: copies away every block whose trust would fall below 100% without
 * the member, reading from the member while it is still there, then retires
 * it (forgets it and its placements, and removes its membership tag).
 */
export async function drain(backend: ReplicatedBackend, name: string): Promise<AdminResult> {
  const { set, db, scans, blocks } = backend;
  let member = set.memberByName(name);
  if (member.state === 'lost') throw new BackendError('badRequest', `member ${name} is lost; there is nothing to drain`);
  if (member.state !== 'draining') {
    db.setState(member.id, 'draining');
    set.reloadMembers();
    member = set.memberByName(name);
  }
  await probeMembers(backend);
  const jobName = `drain:${member.id}`;
  const job = db.startJob(jobName);
  let cursor = job.cursor ?? '';
  const c: Counters = { checked: 0, copied: 0, short: 0, noCopy: 0 };
  const progress = new Progress(set.log);
  set.log('info', `drain ${name}: copying away blocks that need it${job.cursor !== null ? ` (resuming after ${cursor})` : ''}`);
  for (;;) {
    const keys = scans.memberKeys(member.id, cursor, BATCH);
    if (keys.length === 0) break;
    c.checked += keys.length;
    const needing = keys.filter((key) => set.trustOf(db.placements(key), { exclude: member.id, reachableOnly: true }) < FULL_TRUST);
    await forEachLimit(needing, PARALLEL, async (key) => {
      const data = await readForDrain(backend, member, key);
      if (data === null) {
        c.noCopy += 1;
        return;
      }
      const placed = await blocks.place(key, data, sha256(data), { exclude: member.id, reachableOnly: true });
      c.copied += placed.added.length;
      if (placed.trust < FULL_TRUST) {
        c.short += 1;
        set.log('warning', `drain ${name}: block ${key} reached only ${formatTrust(placed.trust)}% without it`);
      }
    });
    cursor = keys[keys.length - 1] as string;
    await flushBatch(backend, `drain ${name}`);
    db.moveJob(jobName, cursor);
    progress.tick(() => `drain ${name}: ${c.checked} blocks checked, ${c.copied} copies made, ${c.short} short`);
  }
  db.endJob(jobName);
  if (c.short > 0 || c.noCopy > 0) {
    const text = `drain ${name}: not finished: ${c.short} blocks could not reach ${FULL_TRUST}% trust without it and ${c.noCopy} could not be read. The member stays draining; add members or raise trust, then run drain ${name} again`;
    return { text, data: { ...c, retired: false } };
  }
  await set.call(member, async (b) => {
    await b.removeTag(MEMBER_TAG);
    await b.flush();
  }).catch((err: unknown) => set.log('warning', `drain ${name}: could not remove its membership tag: ${toBackendError(err).message}`));
  await set.pool.drop(member.id);
  db.deleteMember(member.id);
  set.reloadMembers();
  return {
    text: `drain ${name}: done: ${c.checked} blocks checked, ${c.copied} copies made; member ${name} is retired and forgotten`,
    data: { ...c, retired: true },
  };
}

/** The block's bytes for drain: from the draining member first, else from any other holder. */
async function readForDrain(backend: ReplicatedBackend, member: MemberRow, key: string): Promise<Uint8Array | null> {
  const expected = backend.db.block(key)?.sha256 ?? null;
  try {
    const data = await backend.set.call(member, (b) => b.get(key));
    if (data !== null && (expected === null || sha256(data).equals(expected))) return data;
  } catch {
    // read it from another holder
  }
  return backend.blocks.get(key).catch(() => null);
}

/** lost: the member is gone forever; forget its placements, then re-replicate. */
export async function lost(backend: ReplicatedBackend, name: string): Promise<AdminResult> {
  const { set, db } = backend;
  const member = set.memberByName(name);
  db.setState(member.id, 'lost');
  set.reloadMembers();
  await set.pool.drop(member.id);
  db.endJob(`drain:${member.id}`);
  db.forgetMember(member.id);
  const result = await reReplicate(backend);
  return { text: `member ${name} is marked lost and its placements are forgotten\n${result.text}`, data: result.data };
}
