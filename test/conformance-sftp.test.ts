/**
 * backend-sftp against a real OpenSSH sshd on 127.0.0.1 (test/support/sshd.ts):
 * the conformance suite in process and spawned, then failures produced for
 * real: sshd killed and restarted mid-run, sshd frozen (SIGSTOP), bad
 * credentials, an unknown host key.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Backend } from '../src/backends/backend.js';
import { BackendError } from '../src/backends/errors.js';
import { openArchive } from '../src/backends/open.js';
import { parseSftpArgs } from '../src/backends/sftp/config.js';
import { checkHostKey } from '../src/backends/sftp/known-hosts.js';
import { UsageError } from '../src/backends/factory.js';
import { identifierFixtures } from './conformance/fixture.js';
import { backendConformance } from './conformance/suite.js';
import { Sshd } from './support/sshd.js';
import { patternBytes, scratchDir, sleep } from './support/scratch.js';

const scratch = scratchDir('cairn-sftp-');
let sshd: Sshd;

before(async () => {
  sshd = await Sshd.start(path.join(scratch.dir, 'sshd'));
});
after(async () => {
  await sshd?.stop();
  scratch.remove();
});

function sftpIdentifier(server: Sshd, dir: string, extra = ''): string {
  return `backend-sftp --port ${server.port} --identity ${server.clientKey} --known-hosts ${server.knownHosts} ${extra}${server.user}@127.0.0.1:${dir}`;
}

const sftp = identifierFixtures((dir) => sftpIdentifier(sshd, `${dir}/archive`));
backendConformance('sftp (in process)', sftp.inProcess);
backendConformance('sftp (spawned)', sftp.spawned);

async function rejectsWithCode(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof BackendError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('sftp failures, produced for real', () => {
  it('an archive made over SFTP is a valid fs archive on the server, and back', async () => {
    const dir = path.join(scratch.dir, 'interop');
    const remote = await openArchive(sftpIdentifier(sshd, dir), { onLog: () => undefined });
    await remote.put('from-sftp', Buffer.from('a'));
    await remote.setTag('t', Buffer.from('tag'));
    assert.equal(await remote.lockTag('lk', 'sftp-client', 60), true);
    await remote.close();
    const local = await openArchive(`backend-fs fs ${dir}`, { onLog: () => undefined });
    assert.equal(Buffer.from((await local.get('from-sftp')) as Uint8Array).toString(), 'a');
    assert.equal(await local.tagLocked('lk'), 'sftp-client');
    assert.equal(await local.lockTag('lk', 'local', 60), false);
    await local.put('from-fs', Buffer.from('b'));
    await local.close();
    const again = await openArchive(sftpIdentifier(sshd, dir), { onLog: () => undefined });
    assert.equal(Buffer.from((await again.get('from-fs')) as Uint8Array).toString(), 'b');
    await again.close();
  });

  it('sshd killed mid-run and restarted: the backend reconnects and nothing acknowledged is lost', async () => {
    const own = await Sshd.start(path.join(scratch.dir, 'sshd-kill'));
    const dir = path.join(scratch.dir, 'kill-archive');
    const backends: Backend[] = [];
    try {
      for (const spawnOwn of [false, true]) {
        backends.push(await openArchive(sftpIdentifier(own, `${dir}-${spawnOwn}`, '--timeout 20 '), { spawnOwn, onLog: () => undefined }));
      }
      const acknowledged: Array<[Backend, string]> = [];
      const failed: string[] = [];
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 60; i += 1) {
        for (const backend of backends) {
          const key = `blk${i}`;
          writes.push(backend.put(key, patternBytes(20_000, i)).then(() => {
            acknowledged.push([backend, key]);
          }, (err: Error) => {
            failed.push(`${key}: ${err.message}`);
          }));
        }
        if (i === 20) await own.kill();
        if (i === 30) await own.restart();
        await sleep(10);
      }
      await Promise.all(writes);
      assert.deepEqual(failed, [], 'puts are retried across the restart');
      for (const backend of backends) await backend.flush();
      for (const [backend, key] of acknowledged) {
        const i = Number(key.slice(3));
        assert.deepEqual(Buffer.from((await backend.get(key)) as Uint8Array), patternBytes(20_000, i), key);
      }
      assert.equal(acknowledged.length, 120);
    } finally {
      for (const backend of backends) await backend.close().catch(() => undefined);
      await own.stop();
    }
  });

  it('a hung (SIGSTOPped) sshd gives unavailable after --timeout, never a hang; it recovers when thawed', async () => {
    const own = await Sshd.start(path.join(scratch.dir, 'sshd-hang'));
    const dir = path.join(scratch.dir, 'hang-archive');
    const backends: Backend[] = [];
    try {
      for (const spawnOwn of [false, true]) {
        const backend = await openArchive(sftpIdentifier(own, `${dir}-${spawnOwn}`, '--timeout 1.5 '), { spawnOwn, onLog: () => undefined });
        await backend.put('before', Buffer.from('kept'));
        backends.push(backend);
      }
      own.freeze(true);
      for (const backend of backends) {
        const started = Date.now();
        await rejectsWithCode(backend.put('during', Buffer.from('x')), 'unavailable', /did not complete within 1.5 s/);
        const took = Date.now() - started;
        assert.ok(took >= 1400 && took < 6000, `gave up after ${took} ms`);
      }
      own.freeze(false);
      for (const backend of backends) {
        assert.equal(Buffer.from((await backend.get('before')) as Uint8Array).toString(), 'kept');
        await backend.put('after', Buffer.from('y'));
        assert.equal(await backend.exists('after'), true);
      }
    } finally {
      own.freeze(false);
      for (const backend of backends) await backend.close().catch(() => undefined);
      await own.stop();
    }
  });

  it('a key the server does not accept is refused with a clear error naming the host', async () => {
    const other = path.join(scratch.dir, 'sshd-other');
    const wrong = await Sshd.start(other);
    await wrong.stop();
    for (const spawnOwn of [false, true]) {
      const id = `backend-sftp --port ${sshd.port} --identity ${wrong.clientKey} --known-hosts ${sshd.knownHosts} ${sshd.user}@127.0.0.1:${scratch.dir}/never`;
      await rejectsWithCode(openArchive(id, { spawnOwn, onLog: () => undefined, stderr: null }), 'badRequest', /refused the login.*--identity/);
    }
    assert.equal(existsSync(`${scratch.dir}/never`), false);
  });

  it('an unknown or changed host key is refused unless --no-host-key-check', async () => {
    const empty = path.join(scratch.dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const unknown = `backend-sftp --port ${sshd.port} --identity ${sshd.clientKey} --known-hosts ${empty} ${sshd.user}@127.0.0.1:${scratch.dir}/hk`;
    await rejectsWithCode(openArchive(unknown, { onLog: () => undefined }), 'badRequest', /is not in .*empty_known_hosts/);
    const changed = path.join(scratch.dir, 'changed_known_hosts');
    writeFileSync(changed, `[127.0.0.1]:${sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`);
    const mismatch = unknown.replace(empty, changed);
    await rejectsWithCode(openArchive(mismatch, { spawnOwn: true, onLog: () => undefined, stderr: null }), 'badRequest', /does not match/);
    const unchecked = `backend-sftp --port ${sshd.port} --identity ${sshd.clientKey} --no-host-key-check ${sshd.user}@127.0.0.1:${scratch.dir}/hk`;
    const backend = await openArchive(unchecked, { onLog: () => undefined });
    assert.match((await backend.admin('info', [])).text, /hostKeyCheck:\s+off/);
    await backend.close();
  });

  it('a port where nothing listens gives unavailable after the timeout', async () => {
    const id = `backend-sftp --port 1 --identity ${sshd.clientKey} --no-host-key-check --timeout 1 ${sshd.user}@127.0.0.1:${scratch.dir}/nowhere`;
    await rejectsWithCode(openArchive(id, { onLog: () => undefined }), 'unavailable', /127\.0\.0\.1/);
  });
});

describe('sftp: known_hosts and arguments', () => {
  const key = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', 'base64');
  const other = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIB9uYBaDg2Fw1hTJuj5hOZDpgmRNnOZ7AF7kJTHh4Jzx', 'base64');
  const line = (hosts: string, k = key): string => `${hosts} ssh-ed25519 ${k.toString('base64')}`;

  it('plain, [host]:port, wildcard and hashed entries match; another key is a mismatch; no entry is unknown', () => {
    assert.equal(checkHostKey(line('vault,10.0.0.2'), 'vault', 22, key), 'match');
    assert.equal(checkHostKey(line('[vault]:2222'), 'vault', 2222, key), 'match');
    assert.equal(checkHostKey(line('vault'), 'vault', 2222, key), 'unknown');
    assert.equal(checkHostKey(line('*.lan,!evil.lan'), 'nas.lan', 22, key), 'match');
    assert.equal(checkHostKey(line('*.lan,!evil.lan'), 'evil.lan', 22, key), 'unknown');
    const salt = Buffer.from('0123456789abcdef0123');
    const hash = createHmac('sha1', salt).update('[vault]:2222').digest('base64');
    assert.equal(checkHostKey(line(`|1|${salt.toString('base64')}|${hash}`), 'vault', 2222, key), 'match');
    assert.equal(checkHostKey(line('vault', other), 'vault', 22, key), 'mismatch');
    assert.equal(checkHostKey(`# comment\n\n${line('vault', other)}\n${line('vault')}`, 'vault', 22, key), 'match');
    assert.equal(checkHostKey(`${line('vault')}\n@revoked ${line('*')}`, 'vault', 22, key), 'revoked');
  });

  it('arguments: the option names scripts rely on, and clear usage errors', () => {
    const config = parseSftpArgs(['--port', '2222', '--identity', '/k', '--known-hosts', '/kh', '--connections', '3', '--timeout', '2.5', 'bob@vault:/srv/a']);
    assert.deepEqual(
      [config.user, config.host, config.port, config.path, config.identity, config.knownHosts, config.connections, config.timeoutSeconds],
      ['bob', 'vault', 2222, '/srv/a', '/k', '/kh', 3, 2.5],
    );
    assert.equal(parseSftpArgs(['--no-host-key-check', 'bob@[::1]:rel']).knownHosts, null);
    assert.equal(parseSftpArgs(['bob@[::1]:rel']).host, '::1');
    for (const bad of [['vault'], ['--port', '0', 'a@b:c'], ['--timeout', 'x', 'a@b:c'], ['--known-hosts', 'f', '--no-host-key-check', 'a@b:c'], ['--bogus', 'a@b:c']]) {
      assert.throws(() => parseSftpArgs(bad), UsageError, bad.join(' '));
    }
  });
});
