/**
 * verify and rebuild-cache: reconcile the placement cache with what the
 * members really hold, by enumerating them with `listBlocks` cursors.
 *
 * A verify of one member records the time it started; every key the member
 * lists becomes present (confirmed now), and once the listing is complete,
 * placements on that member not confirmed since the start are absent. The
 * member's cursor is saved after each page, so an interrupted verify resumes.
 */
import type { AdminResult } from '../backends/backend.js';
import { BackendError, toBackendError } from '../backends/errors.js';
import { MAX_LIST_LIMIT } from '../backends/names.js';
import type { MemberRow } from './replica-db.js';
import { Progress, probeMembers } from './replica-jobs.js';
import type { ReplicatedBackend } from './replicated-backend.js';

export interface VerifyCounts {
  member: string;
  listed: number;
  adopted: number;
  missing: number;
}

async function verifyMember(backend: ReplicatedBackend, member: MemberRow): Promise<VerifyCounts> {
  const { set, db } = backend;
  const jobName = `verify:${member.id}`;
  const job = db.startJob(jobName);
  let cursor = job.cursor;
  const counts: VerifyCounts = { member: member.name, listed: 0, adopted: 0, missing: 0 };
  const progress = new Progress(set.log);
  const remote = await set.pool.get(member);
  if (!remote.info().features.includes('listBlocks')) {
    db.endJob(jobName);
    throw new BackendError('unsupported', `member ${member.name} cannot list its blocks (no listBlocks feature)`);
  }
  for (;;) {
    const [keys, next] = await set.call(member, (b) => b.listBlocks(cursor, MAX_LIST_LIMIT));
    counts.listed += keys.length;
    counts.adopted += db.confirmListed(keys, member.id, Date.now());
    cursor = next;
    db.moveJob(jobName, cursor);
    progress.tick(() => `verify ${member.name}: ${counts.listed} blocks listed`);
    if (next === null) break;
  }
  counts.missing = db.sweepUnconfirmed(member.id, job.startedAt);
  db.endJob(jobName);
  return counts;
}

/** verify [NAME]: every member that is not lost, or one. */
export async function verify(backend: ReplicatedBackend, name?: string): Promise<AdminResult> {
  const { set } = backend;
  await probeMembers(backend);
  const members = name === undefined ? set.members().filter((m) => m.state !== 'lost') : [set.memberByName(name)];
  if (name !== undefined && members[0]?.state === 'lost') throw new BackendError('badRequest', `member ${name} is lost`);
  const results: VerifyCounts[] = [];
  const failures: string[] = [];
  for (const member of members) {
    try {
      results.push(await verifyMember(backend, member));
    } catch (err) {
      failures.push(`${member.name}: ${toBackendError(err).message}`);
    }
  }
  const lines = results.map((r) => `${r.member}: ${r.listed} blocks listed, ${r.adopted} unknown to the cache adopted, ${r.missing} the cache placed there are missing`);
  if (failures.length > 0) lines.push(`not verified (run verify again to resume): ${failures.join('; ')}`);
  const short = backend.scans.shortfall({ reachableOnly: true });
  lines.push(`${short.short} blocks are short of full trust${short.short > 0 ? ': run re-replicate' : ''}`);
  return { text: lines.join('\n'), data: { members: results, failures, underReplicated: short.short } };
}

/** rebuild-cache: forgets every placement and verifies every member that is not lost. */
export async function rebuildCache(backend: ReplicatedBackend): Promise<AdminResult> {
  const { db, set } = backend;
  const job = db.startJob('rebuild-cache');
  if (job.cursor === null) {
    set.log('info', 'rebuild-cache: forgetting every placement');
    for (const member of set.members()) db.endJob(`verify:${member.id}`);
    db.clearPlacements();
    db.moveJob('rebuild-cache', 'cleared');
  }
  const result = await verify(backend);
  const failures = (result.data as { failures: string[] }).failures;
  if (failures.length === 0) db.endJob('rebuild-cache');
  return { text: `rebuild-cache:\n${result.text}`, data: result.data };
}
