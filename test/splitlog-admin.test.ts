/**
 * The splitlog admin commands: help lists them, settings take effect and
 * persist, write protection refuses writes, stats report logs and live and
 * dead bytes, and bad arguments are a badRequest.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { BackendError } from '../src/backends/errors.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';

function open(identifier: string): Promise<Backend> {
  return openArchive(identifier, { spawnOwn: false, onLog: () => undefined });
}

const isCode = (code: string) => (err: unknown): boolean => err instanceof BackendError && err.code === code;

describe('splitlog admin', () => {
  it('help lists every command of the issue', async () => {
    const scratch = scratchDir();
    try {
      const backend = await open(`backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite`);
      try {
        const help = (await backend.admin('help', [])).text;
        for (const command of ['info', 'stats', 'set-block-size', 'set-max-logfile-size', 'set-commit-interval', 'write-protect', 'write-unprotect', 'reindex', 'compact', 'check']) {
          assert.match(help, new RegExp(`\\b${command}\\b`));
        }
      } finally {
        await backend.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('settings take effect, persist across opens, and bad values are a badRequest', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite`;
    try {
      const backend = await open(identifier);
      try {
        await backend.admin('set-max-logfile-size', ['100k']);
        for (let i = 0; i < 10; i += 1) await backend.put(`s${i}`, patternBytes(30_000, i));
        await backend.flush();
        const logs = readdirSync(path.join(scratch.dir, 'logs')).filter((f) => f.startsWith('log-'));
        assert.ok(logs.length >= 3, `${logs.length} logs`);
        for (const log of logs) assert.ok(statSync(path.join(scratch.dir, 'logs', log)).size <= 100 * 1024);
        const stats = (await backend.admin('stats', [])).data as { blocks: number; logs: number; perLog: Array<{ live: number; dead: number }> };
        assert.equal(stats.blocks, 10);
        assert.equal(stats.logs, logs.length);
        assert.ok(stats.perLog.every((l) => l.dead === 0));
        await backend.remove('s0');
        await backend.flush();
        const after = (await backend.admin('stats', [])).data as { perLog: Array<{ dead: number }> };
        assert.ok((after.perLog[0] as { dead: number }).dead >= 30_000);

        await backend.admin('set-block-size', ['65536']);
        await assert.rejects(backend.put('big', new Uint8Array(65_537)), isCode('tooLarge'));
        await backend.admin('set-commit-interval', ['9']);
        await assert.rejects(backend.admin('set-block-size', ['1k']), isCode('badRequest'));
        await assert.rejects(backend.admin('set-commit-interval', ['soon']), isCode('badRequest'));
        await assert.rejects(backend.admin('set-max-logfile-size', []), isCode('badRequest'));
        await assert.rejects(backend.admin('compact', ['150']), isCode('badRequest'));
      } finally {
        await backend.close();
      }
      const again = await open(identifier);
      try {
        assert.equal(again.info().blockSize, 65536);
        const info = (await again.admin('info', [])).data as { commitInterval: number; maxLogfileSize: number; maxLogfileSizeFrom: string };
        assert.equal(info.commitInterval, 9);
        assert.equal(info.maxLogfileSize, 100 * 1024);
        assert.equal(info.maxLogfileSizeFrom, 'setting');
      } finally {
        await again.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('write-protect refuses writes (readOnly) and new connections announce it; write-unprotect lifts it', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite`;
    try {
      const backend = await open(identifier);
      try {
        await backend.put('before', Buffer.from('x'));
        await backend.admin('write-protect', []);
        await assert.rejects(backend.put('p', Buffer.from('x')), isCode('readOnly'));
        await assert.rejects(backend.setTag('t', Buffer.from('x')), isCode('readOnly'));
        await assert.rejects(backend.remove('before'), isCode('readOnly'));
        assert.equal(Buffer.from((await backend.get('before')) as Uint8Array).toString(), 'x');
        const other = await open(identifier);
        assert.equal(other.info().writable, false);
        await other.close();
        await backend.admin('write-unprotect', []);
        await backend.put('p', Buffer.from('y'));
        assert.equal(await backend.exists('p'), true);
      } finally {
        await backend.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('files are created 0600 and directories 0700, the metadata\'s WAL included', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/data/logs ${scratch.dir}/index/meta.sqlite 100000`;
    try {
      const backend = await open(identifier);
      try {
        for (let i = 0; i < 5; i += 1) await backend.put(`m${i}`, patternBytes(40_000, i));
        await backend.flush();
        const mode = (file: string): number => statSync(path.join(scratch.dir, file)).mode & 0o777;
        for (const dir of ['data', 'data/logs', 'index']) assert.equal(mode(dir), 0o700, dir);
        const logs = readdirSync(path.join(scratch.dir, 'data/logs'));
        assert.ok(logs.length >= 2);
        for (const log of logs) assert.equal(mode(`data/logs/${log}`), 0o600, log);
        for (const file of readdirSync(path.join(scratch.dir, 'index'))) assert.equal(mode(`index/${file}`), 0o600, file);
      } finally {
        await backend.close();
      }
    } finally {
      scratch.remove();
    }
  });
});
