import type { AdminResult } from '../backends/backend.js';
import { formatFields } from '../backends/admin-commands.js';
import { FULL_TRUST } from './placement.js';
import { probeMembers } from './replica-jobs.js';
import type { ReplicatedBackend } from './replicated-backend.js';

export interface MemberStatus {
  name: string;
  identifier: string;
  state: string;
  trust: number;
  readWeight: number;
  writeWeight: number;
  reachable: boolean | null;
  problem: string | null;
  blocks: number;
  bytes: number;
  unknown: number;
}

/**
 * status: per member its state, trust, weights, reachability, blocks, bytes
 * and unknown placements; the number of blocks short of 100% trust among
 * the members reachable now; jobs waiting to be resumed.
 */
export async function status(backend: ReplicatedBackend): Promise<AdminResult> {
  const { set, scans, db } = backend;
  const down = new Set((await probeMembers(backend)).map((m) => m.id));
  const counts = scans.perMember();
  const members: MemberStatus[] = set.members().map((m) => {
    const c = counts.get(m.id) ?? { blocks: 0, bytes: 0, unknown: 0 };
    const lost = m.state === 'lost';
    return {
      name: m.name,
      identifier: m.identifier,
      state: m.state,
      trust: m.trust,
      readWeight: m.readWeight,
      writeWeight: m.writeWeight,
      reachable: lost ? null : !down.has(m.id),
      problem: down.has(m.id) ? (set.pool.downReason(m.id) ?? 'unreachable') : null,
      ...c,
    };
  });
  const short = scans.shortfall({ reachableOnly: true });
  const totals = scans.totals();
  const jobs = db.jobs().map((j) => ({ name: j.name, startedAt: new Date(j.startedAt).toISOString(), cursor: j.cursor }));
  const header = ['member', 'state', 'trust', 'read', 'write', 'reachable', 'blocks', 'bytes', 'unknown'];
  const rows = members.map((m) => [
    m.name, m.state, `${m.trust}%`, String(m.readWeight), String(m.writeWeight),
    m.reachable === null ? '-' : m.reachable ? 'yes' : 'NO', String(m.blocks), String(m.bytes), String(m.unknown),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  const lines = [
    formatFields({ set: db.setName(), blocks: totals.blocks, bytes: totals.bytes }),
    '',
    line(header),
    ...rows.map(line),
    '',
    short.short === 0
      ? `every block has at least ${FULL_TRUST}% trust among reachable members`
      : `${short.short} of ${short.blocks} blocks are short of ${FULL_TRUST}% trust among reachable members${short.none > 0 ? ` (${short.none} with no reachable copy)` : ''}: run re-replicate`,
  ];
  for (const m of members.filter((x) => x.problem !== null)) lines.push(`${m.name}: ${m.problem}`);
  for (const j of jobs) lines.push(`unfinished job ${j.name} (started ${j.startedAt}): run it again to resume`);
  return {
    text: lines.join('\n'),
    data: { set: db.setName(), blocks: totals.blocks, bytes: totals.bytes, underReplicated: short.short, noReachableCopy: short.none, members, jobs },
  };
}
