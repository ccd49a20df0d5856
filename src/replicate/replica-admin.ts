import type { AdminResult } from '../backends/backend.js';
import { expectArgs, formatFields, type AdminTable } from '../backends/admin-commands.js';
import { BackendError, toBackendError } from '../backends/errors.js';
import { MEMBER_TAG, memberOf, memberTagValue } from '../backends/membership.js';
import { redactIdentifier, splitIdentifier } from '../protocol/identifier.js';
import type { MemberState } from './replica-db.js';
import { drain, lost, reReplicate } from './replica-jobs.js';
import { status } from './replica-status.js';
import { rebuildCache, verify } from './replica-verify.js';
import type { ReplicatedBackend } from './replicated-backend.js';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const ADD_USAGE = "add-member NAME 'IDENTIFIER' TRUST [--read W] [--write W] [--offline]";

function parseTrust(text: string | undefined): number {
  if (text === undefined || !/^\d{1,3}%?$/.test(text) || Number.parseInt(text, 10) > 100) {
    throw new BackendError('badRequest', `trust must be a whole percentage from 0 to 100: got ${JSON.stringify(text ?? '')}`);
  }
  return Number.parseInt(text, 10);
}

function parseWeight(text: string | undefined, what: string): number {
  const value = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1e6) {
    throw new BackendError('badRequest', `${what} weight must be a number from 0 to 1000000: got ${JSON.stringify(text ?? '')}`);
  }
  return value;
}

/** The replicated backend's admin commands (`help` is added by runAdmin). */
export function replicaAdminTable(backend: ReplicatedBackend): AdminTable {
  const { set, db } = backend;
  const changed = (text: string, data: unknown): AdminResult => {
    set.reloadMembers();
    return { text, data };
  };
  return {
    info: {
      usage: 'info',
      summary: 'describe this replicated set',
      run: () => {
        const members = set.members().map((m) => ({ name: m.name, state: m.state, trust: m.trust, identifier: redactIdentifier(m.identifier) }));
        const fields = { backend: 'replicated', set: db.setName(), config: db.file, blockSize: db.blockSize() };
        const lines = members.map((m) => `  ${m.name} (${m.state}, trust ${m.trust}%): ${m.identifier}`);
        return { text: [formatFields(fields), `members:${lines.length === 0 ? ' none (add-member adds one)' : ''}`, ...lines].join('\n'), data: { ...fields, members } };
      },
    },
    status: { usage: 'status', summary: 'per member: state, trust, weights, blocks, bytes, unknowns; blocks short of 100% trust', run: () => status(backend) },
    'add-member': {
      usage: ADD_USAGE,
      summary: 'add a member archive (weights default to 1; --offline: it cannot be reached now)',
      run: (args) => addMember(backend, args),
    },
    'set-trust': {
      usage: 'set-trust NAME TRUST',
      summary: 'change a member\'s trust percentage',
      run: (args) => {
        expectArgs(args, 2, 'set-trust NAME TRUST');
        const member = set.memberByName(args[0]);
        db.setTrust(member.id, parseTrust(args[1]));
        return changed(`member ${member.name}: trust ${args[1]}%; run re-replicate if blocks fell short`, null);
      },
    },
    'set-weights': {
      usage: 'set-weights NAME READ WRITE',
      summary: 'change a member\'s read and write weights',
      run: (args) => {
        expectArgs(args, 3, 'set-weights NAME READ WRITE');
        const member = set.memberByName(args[0]);
        db.setWeights(member.id, parseWeight(args[1], 'read'), parseWeight(args[2], 'write'));
        return changed(`member ${member.name}: read weight ${args[1]}, write weight ${args[2]}`, null);
      },
    },
    'set-state': {
      usage: 'set-state NAME active|read-only',
      summary: 'take new blocks on a member, or not (also cancels a drain)',
      run: (args) => {
        expectArgs(args, 2, 'set-state NAME active|read-only');
        const member = set.memberByName(args[0]);
        const state = args[1] as MemberState;
        if (state !== 'active' && state !== 'read-only') throw new BackendError('badRequest', 'set-state takes active or read-only (use drain or lost for the others)');
        if (member.state === 'lost') throw new BackendError('badRequest', `member ${member.name} is lost; add its archive again under a new name`);
        db.setState(member.id, state);
        db.endJob(`drain:${member.id}`);
        return changed(`member ${member.name}: ${state}`, null);
      },
    },
    drain: {
      usage: 'drain NAME',
      summary: 'copy away every block that needs it, then retire the member (resumable)',
      run: (args) => {
        expectArgs(args, 1, 'drain NAME');
        return drain(backend, args[0] as string);
      },
    },
    lost: {
      usage: 'lost NAME',
      summary: 'the member is gone for good: forget its placements, then re-replicate',
      run: (args) => {
        expectArgs(args, 1, 'lost NAME');
        return lost(backend, args[0] as string);
      },
    },
    're-replicate': {
      usage: 're-replicate',
      summary: 'bring every block back to 100% trust among reachable members (resumable)',
      run: (args) => {
        expectArgs(args, 0, 're-replicate');
        return reReplicate(backend);
      },
    },
    verify: {
      usage: 'verify [NAME]',
      summary: 'list what members really hold and correct the placement cache (resumable)',
      run: (args) => {
        if (args.length > 1) throw new BackendError('badRequest', 'usage: verify [NAME]');
        return verify(backend, args[0]);
      },
    },
    'rebuild-cache': {
      usage: 'rebuild-cache',
      summary: 'forget every placement and verify every member (resumable)',
      run: (args) => {
        expectArgs(args, 0, 'rebuild-cache');
        return rebuildCache(backend);
      },
    },
  };
}

async function addMember(backend: ReplicatedBackend, args: string[]): Promise<AdminResult> {
  const { set, db } = backend;
  const positional: string[] = [];
  let read = 1;
  let write = 1;
  let offline = false;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    if (arg === '--read') read = parseWeight(args[(i += 1)], 'read');
    else if (arg === '--write') write = parseWeight(args[(i += 1)], 'write');
    else if (arg === '--offline') offline = true;
    else positional.push(arg);
  }
  if (positional.length !== 3) throw new BackendError('badRequest', `usage: ${ADD_USAGE}`);
  const [name, identifier, trustText] = positional as [string, string, string];
  if (!NAME_PATTERN.test(name)) throw new BackendError('badRequest', 'a member name is 1 to 32 of [A-Za-z0-9_.-], starting with a letter or digit');
  const trust = parseTrust(trustText);
  try {
    splitIdentifier(identifier);
  } catch (err) {
    throw new BackendError('badRequest', `bad member identifier: ${(err as Error).message}`);
  }
  const members = set.members();
  if (members.some((m) => m.name === name)) throw new BackendError('badRequest', `there is already a member named ${name}`);
  const same = members.find((m) => m.identifier === identifier && m.state !== 'lost');
  if (same !== undefined) throw new BackendError('badRequest', `member ${same.name} already has that identifier`);

  if (offline) {
    db.addMember({ name, identifier, trust, readWeight: read, writeWeight: write, state: 'active', joined: 0 });
    set.reloadMembers();
    const text = `added member ${name} (not contacted: it gets its membership tag when first reached): trust ${trust}%, read weight ${read}, write weight ${write}`;
    return { text, data: { name, trust, readWeight: read, writeWeight: write, notes: [] } };
  }
  let archive;
  try {
    archive = await set.openArchive(identifier);
  } catch (err) {
    throw new BackendError('unavailable', `cannot reach the new member (add --offline to add it anyway): ${toBackendError(err).message}`);
  }
  const notes: string[] = [];
  try {
    const info = archive.info();
    const carried = info.member ?? memberOf(await archive.getTag(MEMBER_TAG));
    if (carried !== undefined && carried !== db.setName()) {
      throw new BackendError('badRequest', `that archive is a member of another replicated set (${carried})`);
    }
    if (!info.writable) notes.push('the archive is not writable: it can only be read from');
    if (info.blockSize < db.blockSize()) {
      if (backend.scans.shortfall().blocks > 0) {
        throw new BackendError('badRequest', `the archive's block size (${info.blockSize}) is smaller than the set's (${db.blockSize()})`);
      }
      db.setBlockSize(info.blockSize);
      notes.push(`the set's block size is now ${info.blockSize} bytes, the member's`);
    }
    if (info.writable) {
      await archive.setTag(MEMBER_TAG, memberTagValue(db.setName()));
      await archive.flush();
    }
    if (info.features.includes('listBlocks') && (await archive.listBlocks(null, 1))[0].length > 0) {
      notes.push(`it already holds blocks: run "verify ${name}" to record them`);
    }
  } finally {
    await archive.close().catch(() => undefined);
  }
  db.addMember({ name, identifier, trust, readWeight: read, writeWeight: write, state: 'active', joined: 1 });
  set.reloadMembers();
  const text = [`added member ${name}: trust ${trust}%, read weight ${read}, write weight ${write}`, ...notes].join('\n');
  return { text, data: { name, trust, readWeight: read, writeWeight: write, notes } };
}
