/**
 * The splitlog store's repair paths: a deleted metadata file (clear error,
 * `archive-admin ... reindex` brings everything back), a corrupt byte in a
 * log (`check` names the record, `get` answers corrupt, the rest is fine),
 * and `compact` (space comes back, live data stays, removals stay removed
 * even through a reindex).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { closeSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { Metadata } from '../src/backends/splitlog/metadata.js';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { BackendError } from '../src/backends/errors.js';
import { openArchive } from '../src/backends/open.js';
import { patternBytes, scratchDir } from './support/scratch.js';

const ARCHIVE_ADMIN = fileURLToPath(new URL('../src/cli/archive-admin.js', import.meta.url));
const run = promisify(execFile);

function open(identifier: string, warnings: string[] = []): Promise<Backend> {
  return openArchive(identifier, { spawnOwn: false, onLog: (_level, text) => warnings.push(text) });
}

async function text(backend: Backend, key: string): Promise<string | null> {
  const data = await backend.get(key);
  return data === null ? null : Buffer.from(data).toString();
}

function logFiles(dir: string): string[] {
  return readdirSync(path.join(dir, 'logs')).filter((f) => f.startsWith('log-')).sort();
}

describe('splitlog repair', () => {
  it('without its metadata file the archive opens degraded with a clear message, and archive-admin reindex brings back every block, tag and setting', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite 300000`;
    try {
      const first = await open(identifier);
      const blocks = Array.from({ length: 12 }, (_, i) => [`k${i}`, patternBytes(40_000 + i, i)] as const);
      for (const [key, data] of blocks) await first.put(key, data);
      await first.remove('k3');
      await first.setTag('kept', Buffer.from('tag value'));
      await first.setTag('replaced', Buffer.from('old'));
      await first.setTag('replaced', Buffer.from('new'));
      await first.setTag('gone', Buffer.from('x'));
      await first.removeTag('gone');
      await first.admin('set-block-size', ['128k']);
      await first.admin('set-commit-interval', ['7']);
      await first.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${scratch.dir}/meta.sqlite${suffix}`, { force: true });

      const warnings: string[] = [];
      const degraded = await open(identifier, warnings);
      try {
        assert.equal(degraded.info().writable, false);
        assert.ok(warnings.some((w) => w.includes('does not exist') && w.includes('reindex')), warnings.join('\n'));
        await assert.rejects(degraded.get('k0'), (err: unknown) => {
          assert.ok(err instanceof BackendError);
          assert.equal(err.code, 'unavailable');
          assert.match(err.message, /meta\.sqlite does not exist.*archive-admin '.*' reindex/s);
          return true;
        });
        await assert.rejects(degraded.put('new', Buffer.from('x')), /reindex/);
        assert.match((await degraded.admin('info', [])).text, /degraded/);
      } finally {
        await degraded.close();
      }

      const { stdout } = await run(process.execPath, [ARCHIVE_ADMIN, identifier, 'reindex']);
      assert.match(stdout, /reindexed \d+ records from \d+ logs/);

      const back = await open(identifier);
      try {
        assert.equal(back.info().writable, true);
        assert.equal(back.info().blockSize, 128 * 1024);
        for (const [key, data] of blocks) {
          if (key === 'k3') assert.equal(await back.get(key), null);
          else assert.deepEqual(Buffer.from((await back.get(key)) as Uint8Array), data);
        }
        assert.equal(Buffer.from((await back.getTag('kept')) as Uint8Array).toString(), 'tag value');
        assert.equal(Buffer.from((await back.getTag('replaced')) as Uint8Array).toString(), 'new');
        assert.equal(await back.getTag('gone'), null);
        assert.deepEqual(await back.listTags(), ['kept', 'replaced']);
        const info = (await back.admin('info', [])).data as { commitInterval: number };
        assert.equal(info.commitInterval, 7);
        assert.equal(((await back.admin('check', [])).data as { ok: boolean }).ok, true);
      } finally {
        await back.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('one corrupt byte: check names the record, get answers corrupt, other blocks are unaffected', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite`;
    try {
      const backend = await open(identifier);
      for (let i = 0; i < 5; i += 1) await backend.put(`blk${i}`, patternBytes(10_000, i));
      await backend.close();
      // blk2's record: after blk0 and blk1 (16 + 4 + 10000 bytes each); flip one data byte.
      const log = path.join(scratch.dir, 'logs', logFiles(scratch.dir)[0] as string);
      const at = 2 * (16 + 4 + 10_000) + 16 + 4 + 5000;
      const fd = openSync(log, 'r+');
      const byte = Buffer.alloc(1);
      readSync(fd, byte, 0, 1, at);
      byte[0] = (byte[0] as number) ^ 0x40;
      writeSync(fd, byte, 0, 1, at);
      closeSync(fd);

      const reopened = await open(identifier);
      try {
        const report = await reopened.admin('check', []);
        assert.equal((report.data as { ok: boolean }).ok, false);
        assert.match(report.text, /blk2/);
        assert.match(report.text, /checksum/);
        assert.doesNotMatch(report.text, /blk[0134]/);
        await assert.rejects(reopened.get('blk2'), (err: unknown) => err instanceof BackendError && err.code === 'corrupt' && /blk2/.test(err.message));
        for (const i of [0, 1, 3, 4]) assert.deepEqual(Buffer.from((await reopened.get(`blk${i}`)) as Uint8Array), patternBytes(10_000, i));
        assert.equal(await reopened.exists('blk2'), true);
        // A reindex keeps the damaged block visible as corrupt rather than losing track of it.
        await reopened.admin('reindex', []);
        await assert.rejects(reopened.get('blk2'), (err: unknown) => err instanceof BackendError && err.code === 'corrupt');
        assert.deepEqual(Buffer.from((await reopened.get('blk4')) as Uint8Array), patternBytes(10_000, 4));
      } finally {
        await reopened.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('compact gives back the space of removed blocks and keeps live data, and removals stay removed through a reindex', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite 200000`;
    try {
      const backend = await open(identifier);
      try {
        // Half the keys hex, as the snapshot client's are (the index stores those as bytes).
        const keys = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? `c${i}` : patternBytes(32, 1000 + i).toString('hex')));
        for (const [i, key] of keys.entries()) await backend.put(key, patternBytes(30_000, i));
        await backend.setTag('t-old', Buffer.from('1'));
        await backend.setTag('t-live', Buffer.from('v1'));
        await backend.setTag('t-live', Buffer.from('v2'));
        await backend.removeTag('t-old');
        for (const [i, key] of keys.entries()) if (i % 3 !== 0) await backend.remove(key);
        await backend.flush();
        const sizeBefore = logFiles(scratch.dir).reduce((sum, f) => sum + statSync(path.join(scratch.dir, 'logs', f)).size, 0);
        const before = (await backend.admin('stats', [])).data as { deadBytes: number; liveBytes: number };
        assert.ok(before.deadBytes > before.liveBytes, JSON.stringify(before));

        const result = await backend.admin('compact', []);
        assert.match(result.text, /compacted \d+ logs/);
        const sizeAfter = logFiles(scratch.dir).reduce((sum, f) => sum + statSync(path.join(scratch.dir, 'logs', f)).size, 0);
        assert.ok(sizeAfter < sizeBefore / 2, `${sizeBefore} -> ${sizeAfter} bytes`);
        const verify = async (b: Backend): Promise<void> => {
          for (const [i, key] of keys.entries()) {
            if (i % 3 === 0) assert.deepEqual(Buffer.from((await b.get(key)) as Uint8Array), patternBytes(30_000, i), key);
            else assert.equal(await b.get(key), null, key);
          }
          assert.deepEqual(await b.listTags(), ['t-live']);
          assert.equal(await text(b, 'c0'), patternBytes(30_000, 0).toString());
          assert.equal(Buffer.from((await b.getTag('t-live')) as Uint8Array).toString(), 'v2');
        };
        await verify(backend);
        assert.equal(((await backend.admin('check', [])).data as { ok: boolean }).ok, true);
        // Writing goes on after a compaction.
        await backend.put('after-compact', Buffer.from('fine'));
        await backend.flush();
        assert.equal(await text(backend, 'after-compact'), 'fine');
        await backend.remove('after-compact');

        await backend.admin('reindex', []);
        await verify(backend);
        assert.equal(((await backend.admin('check', [])).data as { ok: boolean }).ok, true);
      } finally {
        await backend.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('compact keeps a removal while the removed block survives in a log that stays, so a reindex cannot bring it back', async () => {
    const scratch = scratchDir();
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${scratch.dir}/meta.sqlite 200000`;
    try {
      const backend = await open(identifier);
      try {
        // log 1: five live blocks and X; log 2: fillers, all removed later; then the removals.
        for (let i = 0; i < 5; i += 1) await backend.put(`live${i}`, patternBytes(30_000, i));
        await backend.put('x', patternBytes(30_000, 99));
        for (let i = 0; i < 6; i += 1) await backend.put(`fill${i}`, patternBytes(30_000, 50 + i));
        for (let i = 0; i < 6; i += 1) await backend.remove(`fill${i}`);
        await backend.remove('x');
        for (let i = 0; i < 7; i += 1) await backend.put(`late${i}`, patternBytes(30_000, 70 + i));
        await backend.flush();
        const before = logFiles(scratch.dir);
        const result = await backend.admin('compact', ['50']);
        const after = logFiles(scratch.dir);
        assert.ok(after.includes('log-000001'), `log 1 (17% dead) stays: ${result.text}`);
        assert.ok(!after.includes('log-000002'), `log 2 (all dead) goes: ${result.text}`);
        assert.ok(after.length < before.length + 1);
        await backend.admin('reindex', []);
        assert.equal(await backend.get('x'), null, 'x stays removed after compact and reindex');
        for (let i = 0; i < 6; i += 1) assert.equal(await backend.exists(`fill${i}`), false);
        for (let i = 0; i < 5; i += 1) assert.deepEqual(Buffer.from((await backend.get(`live${i}`)) as Uint8Array), patternBytes(30_000, i));
        for (let i = 0; i < 7; i += 1) assert.deepEqual(Buffer.from((await backend.get(`late${i}`)) as Uint8Array), patternBytes(30_000, 70 + i));
      } finally {
        await backend.close();
      }
    } finally {
      scratch.remove();
    }
  });

  it('an unreadable metadata file, or one left by an interrupted reindex, opens degraded until reindex rebuilds it', async () => {
    const scratch = scratchDir();
    const meta = `${scratch.dir}/meta.sqlite`;
    const identifier = `backend-fs splitlog ${scratch.dir}/logs ${meta}`;
    try {
      const first = await open(identifier);
      await first.put('kept', Buffer.from('still here'));
      await first.setTag('tag', Buffer.from('v'));
      await first.close();

      // What a reindex does first: create the file marked as being rebuilt. Stopping there
      // (as a crash would) must not leave an archive that looks empty.
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${meta}${suffix}`, { force: true });
      Metadata.open(meta, { create: true, markForReindex: true }).close();
      const warnings: string[] = [];
      const interrupted = await open(identifier, warnings);
      try {
        assert.equal(interrupted.info().writable, false);
        await assert.rejects(interrupted.exists('kept'), /reindex stopped.*reindex/s);
        await interrupted.admin('reindex', []);
        assert.equal(await text(interrupted, 'kept'), 'still here');
      } finally {
        await interrupted.close();
      }

      for (const suffix of ['-wal', '-shm']) rmSync(`${meta}${suffix}`, { force: true });
      writeFileSync(meta, 'this is not a SQLite database, just some bytes that happen to be here');
      const garbled = await open(identifier, warnings);
      try {
        await assert.rejects(garbled.getTag('tag'), /reindex/);
        const result = await garbled.admin('reindex', []);
        assert.match(result.text, /reindexed/);
        assert.ok(readdirSync(scratch.dir).some((f) => f.startsWith('meta.sqlite.unreadable-')), 'the unreadable file is set aside');
      } finally {
        await garbled.close();
      }
      const back = await open(identifier);
      try {
        assert.equal(await text(back, 'kept'), 'still here');
        assert.equal(Buffer.from((await back.getTag('tag')) as Uint8Array).toString(), 'v');
        assert.equal(back.info().writable, true);
      } finally {
        await back.close();
      }
    } finally {
      scratch.remove();
    }
  });
});
