import * as path from 'node:path';
import { openArchive } from '../../src/backends/open.js';
import { quoteArgument } from '../../src/protocol/identifier.js';

export interface MemberSpec {
  name: string;
  trust: number;
  read?: number;
  write?: number;
  /** The member's identifier; default: an fs archive under DIR/NAME. */
  identifier?: string;
}

export function fsMemberIdentifier(dir: string, name: string): string {
  return `backend-fs fs ${quoteArgument(path.join(dir, name))}`;
}

export function replicatedIdentifier(dir: string): string {
  return `backend-replicated ${quoteArgument(path.join(dir, 'replica.sqlite'))}`;
}

/** Creates DIR/replica.sqlite with the given members, through the admin commands a user would run. */
export async function setUpReplica(dir: string, members: readonly MemberSpec[]): Promise<string> {
  const identifier = replicatedIdentifier(dir);
  const admin = await openArchive(identifier, { onLog: () => undefined });
  try {
    for (const m of members) {
      const args = [m.name, m.identifier ?? fsMemberIdentifier(dir, m.name), String(m.trust)];
      if (m.read !== undefined) args.push('--read', String(m.read));
      if (m.write !== undefined) args.push('--write', String(m.write));
      await admin.admin('add-member', args);
    }
  } finally {
    await admin.close();
  }
  return identifier;
}

/** Three fs members, each at 50% trust: every block lands on two of them. */
export const THREE_HALVES: readonly MemberSpec[] = [
  { name: 'a', trust: 50 },
  { name: 'b', trust: 50 },
  { name: 'c', trust: 50 },
];
