/**
 * openArchive: identifiers become backends; a child that dies, never greets
 * or speaks another protocol gives a clear error naming the identifier and
 * its stderr, never a hang.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendError } from '../src/backends/errors.js';
import { openArchive } from '../src/backends/open.js';
import { encodeFrame } from '../src/protocol/frames.js';
import { joinIdentifier } from '../src/protocol/identifier.js';
import { scratchDir } from './support/scratch.js';

/** An identifier running a Node one-liner: the child speaks whatever the script writes. */
function nodeScript(script: string): string {
  return joinIdentifier([process.execPath, '-e', script]);
}

function helloHex(protocol = 1): string {
  const frame = Buffer.concat(encodeFrame(['hello', { protocol, backend: 'fake', blockSize: 65536, writable: true, features: [] }]));
  return frame.toString('hex');
}

async function openFails(identifier: string, pattern: RegExp, options = {}): Promise<BackendError> {
  let caught: unknown;
  try {
    const backend = await openArchive(identifier, { stderr: null, ...options });
    await backend.close();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof BackendError, `expected a BackendError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  return caught;
}

describe('openArchive', () => {
  it('a command that does not exist is named in the error', async () => {
    const err = await openFails('no-such-backend-command --x', /no-such-backend-command.*command not found/);
    assert.equal(err.code, 'unavailable');
  });

  it('a child that exits before greeting: the error names the identifier, exit status and stderr', async () => {
    const err = await openFails(nodeScript('process.stderr.write("disk on fire\\n"); process.exit(3)'), /disk on fire/);
    assert.match(err.message, /exit status 3/);
    assert.match(err.message, /cannot open archive/);
  });

  it('a child that never greets gives an error after the greeting timeout, not a hang', async () => {
    const started = Date.now();
    await openFails(nodeScript('setTimeout(() => {}, 60000)'), /no greeting within 1 s/, { greetingTimeout: 1 });
    assert.ok(Date.now() - started < 10_000);
  });

  it('a greeting with an unknown protocol version is refused with a clear error', async () => {
    const script = `process.stdout.write(Buffer.from('${helloHex(2)}', 'hex')); setTimeout(() => {}, 60000)`;
    await openFails(nodeScript(script), /speaks protocol 2, this client speaks 1/);
  });

  it('fatal from a backend that cannot start reaches the caller with its code', async () => {
    const scratch = scratchDir();
    try {
      const err = await openFails(`backend-fs fs ${scratch.dir}/a extra-arg`, /fs takes one argument/, { spawnOwn: true });
      assert.equal(err.code, 'badRequest');
    } finally {
      scratch.remove();
    }
  });

  it('a child that dies mid-session fails the requests in flight with unavailable, naming it and its stderr', async () => {
    const script = `process.stdout.write(Buffer.from('${helloHex()}', 'hex')); process.stdin.on('data', () => { process.stderr.write('segfault simulated\\n'); process.exit(5); })`;
    const backend = await openArchive(nodeScript(script), { stderr: null });
    await assert.rejects(backend.get('k'), (err: unknown) => {
      assert.ok(err instanceof BackendError);
      assert.equal(err.code, 'unavailable');
      assert.match(err.message, /closed its output/);
      return true;
    });
    await assert.rejects(backend.exists('k'), BackendError);
    await backend.close();
  });

  it('an identifier with shell operators is refused before anything runs', async () => {
    await assert.rejects(openArchive('backend-fs fs /tmp/x; rm -rf /'), /shell operator/);
  });

  it('an unknown store of backend-fs is a badRequest, in process and spawned', async () => {
    await openFails('backend-fs nosuch /x', /unknown store "nosuch"/);
    await openFails('backend-fs nosuch /x', /unknown store "nosuch"/, { spawnOwn: true });
  });

  it('cairn\'s own backends are found without PATH', async () => {
    const scratch = scratchDir();
    const saved = process.env.PATH;
    try {
      process.env.PATH = '/nonexistent';
      for (const spawnOwn of [false, true]) {
        const backend = await openArchive(`backend-fs fs ${scratch.dir}/a`, { spawnOwn });
        await backend.put('k', Buffer.from('v'));
        assert.equal(backend.info().backend, 'fs');
        await backend.close();
      }
    } finally {
      process.env.PATH = saved;
      scratch.remove();
    }
  });
});
