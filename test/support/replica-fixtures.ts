import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  /** Add it even though it cannot be reached now. */
  offline?: boolean;
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
      if (m.offline === true) args.push('--offline');
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

/** Where an fs member keeps a block (fs-backend.ts layout). */
export function fsBlockFile(dir: string, member: string, key: string): string {
  return path.join(dir, member, 'blocks', key.length >= 2 ? key.slice(0, 2) : `${key}_`, key);
}

/** Pulls the plug on an fs member: its directory goes away and a plain file takes its place. */
export function unplug(dir: string, member: string): void {
  renameSync(path.join(dir, member), path.join(dir, `${member}.unplugged`));
  writeFileSync(path.join(dir, member), 'unplugged');
}

export function replug(dir: string, member: string): void {
  rmSync(path.join(dir, member), { force: true });
  renameSync(path.join(dir, `${member}.unplugged`), path.join(dir, member));
}

/** The members holding a block, by looking at the fs members' files. */
export function holdersOnDisk(dir: string, members: readonly string[], key: string): string[] {
  return members.filter((m) => existsSync(fsBlockFile(dir, m, key)));
}
