/**
 * ssh-tunnelled archives: an identifier `ssh ... user@127.0.0.1 backend-fs fs DIR`
 * through a real OpenSSH sshd runs the conformance suite with no
 * ssh-specific code (protocol.md, "Archive identifiers"). The remote end
 * finds backend-fs on PATH (test/support/sshd.ts puts wrappers there through
 * the sshd's SetEnv); the second identifier names the script by absolute path.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BackendError } from '../src/backends/errors.js';
import { openArchive } from '../src/backends/open.js';
import { identifierFixtures } from './conformance/fixture.js';
import { backendConformance } from './conformance/suite.js';
import { CLI_DIR, Sshd } from './support/sshd.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-ssh-');
let sshd: Sshd;

before(async () => {
  sshd = await Sshd.start(path.join(scratch.dir, 'sshd'));
});
after(async () => {
  await sshd?.stop();
  scratch.remove();
});

// An ssh identifier is never one of ours, so "in process" and "spawned" both
// spawn ssh; the suite runs once, the absolute-path form gets a smoke test.
const viaPath = identifierFixtures((dir) => `${sshd.sshCommand()} backend-fs fs ${dir}/archive`);
backendConformance('ssh ... backend-fs fs (remote PATH)', viaPath.spawned);

describe('ssh identifiers: the remote command by absolute path, and failures', () => {
  it('ssh ... node /abs/dist/src/cli/backend-fs.js fs DIR works like the PATH form', async () => {
    const dir = path.join(scratch.dir, 'absolute');
    const id = `${sshd.sshCommand()} ${process.execPath} ${path.join(CLI_DIR, 'backend-fs.js')} fs ${dir}`;
    const backend = await openArchive(id, { onLog: () => undefined });
    assert.equal(backend.info().backend, 'fs');
    await backend.put('k', Buffer.from('through ssh'));
    await backend.setTag('t', Buffer.from('v'));
    await backend.flush();
    await backend.close();
    const local = await openArchive(`backend-fs fs ${dir}`, { onLog: () => undefined });
    assert.equal(Buffer.from((await local.get('k')) as Uint8Array).toString(), 'through ssh');
    assert.match((await local.admin('info', [])).text, new RegExp(dir));
    await local.close();
  });

  it('a remote command that does not exist fails with a clear error, not a hang', async () => {
    await assert.rejects(openArchive(`${sshd.sshCommand()} backend-nonexistent x`, { onLog: () => undefined, stderr: null }), (err: unknown) => {
      assert.ok(err instanceof BackendError);
      assert.match(err.message, /backend-nonexistent|not found|exit status 127/);
      return true;
    });
  });

  it('a refused login fails with the ssh message', async () => {
    const id = `ssh -p ${sshd.port} -i ${path.join(scratch.dir, 'no-such-key')} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes nobody-here@127.0.0.1 backend-fs fs /tmp/x`;
    await assert.rejects(openArchive(id, { onLog: () => undefined, stderr: null }), (err: unknown) => {
      assert.ok(err instanceof BackendError);
      assert.match(err.message, /Permission denied|exit status 255/);
      return true;
    });
  });
});
