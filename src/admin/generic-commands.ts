import { randomBytes } from 'node:crypto';
import type { AdminResult, Backend } from '../backends/backend.js';
import { formatFields } from '../backends/admin-commands.js';
import { BackendError } from '../backends/errors.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';

/**
 * Commands `archive-admin` offers on any backend, through the protocol
 * operations alone (issue 2: tags, stats, check-protocol), plus a forced
 * unlock, which only archive-admin may do (protocol.md, unlockTag).
 */
export interface GenericCommand {
  usage: string;
  summary: string;
  run(backend: Backend, args: string[]): Promise<AdminResult>;
}

export const GENERIC_COMMANDS: Record<string, GenericCommand> = {
  tags: {
    usage: 'tags',
    summary: 'list the tags, with the owner of any live lock',
    async run(backend, args) {
      noArgs('tags', args);
      const names = await backend.listTags();
      const rows = await Promise.all(names.map(async (name) => ({ name, lockedBy: await backend.tagLocked(name) })));
      const text = rows.length === 0 ? '(no tags)' : rows.map((r) => (r.lockedBy === null ? r.name : `${r.name}  (locked by ${r.lockedBy})`)).join('\n');
      return { text, data: rows };
    },
  },
  stats: {
    usage: 'stats',
    summary: 'blocks, bytes and what else the backend counts (the protocol stats operation)',
    async run(backend, args) {
      noArgs('stats', args);
      const stats = await backend.stats();
      return { text: formatFields(stats), data: stats };
    },
  },
  'check-protocol': {
    usage: 'check-protocol [--write]',
    summary: 'exercise the protocol read-only (with --write: also put, get, remove, tags and locks on scratch names)',
    async run(backend, args) {
      if (args.length > 1 || (args.length === 1 && args[0] !== '--write')) {
        throw new BackendError('badRequest', 'usage: check-protocol [--write]');
      }
      return checkProtocol(backend, args[0] === '--write');
    },
  },
  'force-unlock': {
    usage: 'force-unlock TAG',
    summary: 'release a tag lock whoever holds it (after a crashed client)',
    async run(backend, args) {
      if (args.length !== 1) throw new BackendError('badRequest', 'usage: force-unlock TAG');
      const name = args[0] as string;
      const owner = await backend.tagLocked(name);
      if (owner === null) return { text: `${name} is not locked`, data: { tag: name, owner: null } };
      await backend.unlockTag(name, owner);
      return { text: `released the lock on ${name} held by ${owner}`, data: { tag: name, owner } };
    },
  },
};

function noArgs(command: string, args: string[]): void {
  if (args.length > 0) throw new BackendError('badRequest', `${command} takes no arguments`);
}

interface Check {
  check: string;
  ok: boolean;
  detail?: string;
}

async function checkProtocol(backend: Backend, write: boolean): Promise<AdminResult> {
  const checks: Check[] = [];
  const run = async (check: string, fn: () => Promise<string | undefined>): Promise<void> => {
    try {
      const detail = await fn();
      checks.push(detail === undefined ? { check, ok: true } : { check, ok: true, detail });
    } catch (err) {
      checks.push({ check, ok: false, detail: err instanceof Error ? err.message : String(err) });
    }
  };
  const expect = (ok: boolean, what: string): void => {
    if (!ok) throw new Error(what);
  };
  const info = backend.info();
  await run('greeting', async () => {
    expect(info.blockSize >= 65536, `blockSize ${info.blockSize} is under 65536`);
    return `protocol ${PROTOCOL_VERSION}, ${info.backend}, blockSize ${info.blockSize}, ${info.writable ? 'writable' : 'read-only'}, features ${info.features.join(' ')}`;
  });
  const probe = `cairn-check-${randomBytes(8).toString('hex')}`;
  await run('get of an absent block answers nil', async () => {
    expect((await backend.get(probe)) === null, 'got data for a random key');
    return undefined;
  });
  await run('exists and existsMany agree', async () => {
    const one = await backend.exists(probe);
    const many = await backend.existsMany([probe, probe]);
    expect(one === false && many.length === 2 && many.every((b) => b === false), 'inconsistent answers');
    return undefined;
  });
  await run('bad keys are refused with badRequest', async () => {
    try {
      await backend.get('../etc/passwd');
    } catch (err) {
      expect(err instanceof BackendError && err.code === 'badRequest', `answered ${(err as Error).message}`);
      return undefined;
    }
    throw new Error('accepted a bad key');
  });
  await run('listTags', async () => `${(await backend.listTags()).length} tags`);
  await run('stats', async () => {
    const stats = await backend.stats();
    return `${String(stats.blocks ?? '?')} blocks, ${String(stats.bytes ?? '?')} bytes`;
  });
  if (info.features.includes('listBlocks')) {
    await run('listBlocks', async () => `first page: ${(await backend.listBlocks(null, 10))[0].length} keys`);
  }
  if (write) {
    const data = randomBytes(4096);
    const tag = `#${probe}`;
    await run('pipelined put, get, exists', async () => {
      const [, got, there] = await Promise.all([backend.put(probe, data), backend.get(probe), backend.exists(probe)]);
      expect(got !== null && Buffer.compare(Buffer.from(got), data) === 0 && there, 'get after put did not see the block');
      return undefined;
    });
    await run('setTag, getTag, removeTag', async () => {
      await backend.setTag(tag, data);
      const value = await backend.getTag(tag);
      expect(value !== null && Buffer.compare(Buffer.from(value), data) === 0, 'tag value differs');
      expect(await backend.removeTag(tag), 'removeTag answered false');
      return undefined;
    });
    await run('lockTag, tagLocked, unlockTag', async () => {
      expect(await backend.lockTag(tag, probe, 60), 'could not lock a fresh tag');
      expect((await backend.lockTag(tag, `${probe}-other`, 60)) === false, 'a second owner got the lock');
      expect((await backend.tagLocked(tag)) === probe, 'tagLocked names someone else');
      await backend.unlockTag(tag, probe);
      return undefined;
    });
    await run('flush', async () => {
      await backend.flush();
      return undefined;
    });
    if (info.features.includes('remove')) {
      await run('remove', async () => {
        expect(await backend.remove(probe), 'remove answered false for a present block');
        return undefined;
      });
    }
  }
  const failed = checks.filter((c) => !c.ok).length;
  const text = [
    ...checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'}  ${c.check}${c.detail === undefined ? '' : `: ${c.detail}`}`),
    failed === 0 ? 'all checks passed' : `${failed} check(s) failed`,
  ].join('\n');
  if (failed > 0) throw new BackendError('internal', text);
  return { text, data: checks };
}
