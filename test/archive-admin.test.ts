/** archive-admin end to end: the real binary, its output and exit codes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { openArchive, ownCommandPath } from '../src/backends/open.js';
import { scratchDir } from './support/scratch.js';

function admin(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [ownCommandPath('archive-admin'), ...args], { encoding: 'utf8', input, timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('archive-admin', () => {
  const scratch = scratchDir();
  const identifier = `backend-fs fs ${scratch.dir}/archive`;

  before(async () => {
    const backend = await openArchive(identifier);
    await backend.put('k1', Buffer.from('hello'));
    await backend.setTag('home', Buffer.from('x'));
    await backend.lockTag('home', 'crashed-client', 3600);
    await backend.close();
  });
  after(() => scratch.remove());

  it('runs one command and prints its text', () => {
    const { status, stdout } = admin([identifier, 'info']);
    assert.equal(status, 0);
    assert.match(stdout, /backend:\s+fs/);
    assert.match(stdout, /blockSize:\s+16777216/);
  });

  it('prints the data as JSON with --json', () => {
    const { status, stdout } = admin(['--json', identifier, 'stats']);
    assert.equal(status, 0);
    const data = JSON.parse(stdout) as { blocks: number; bytes: number };
    assert.equal(data.blocks, 1);
    assert.equal(data.bytes, 5);
  });

  it('works the same with the backend spawned', () => {
    const { status, stdout } = admin(['--spawn', '--json', identifier, 'stats']);
    assert.equal(status, 0);
    assert.equal((JSON.parse(stdout) as { blocks: number }).blocks, 1);
  });

  it('tags lists tags with their lock owner, and force-unlock releases a crashed client\'s lock', () => {
    assert.match(admin([identifier, 'tags']).stdout, /home\s+\(locked by crashed-client\)/);
    const unlocked = admin([identifier, 'force-unlock', 'home']);
    assert.equal(unlocked.status, 0);
    assert.match(unlocked.stdout, /released the lock on home held by crashed-client/);
    assert.doesNotMatch(admin([identifier, 'tags']).stdout, /locked by/);
  });

  it('check-protocol --write passes on a healthy archive', () => {
    const { status, stdout } = admin([identifier, 'check-protocol', '--write']);
    assert.equal(status, 0, stdout);
    assert.match(stdout, /all checks passed/);
    assert.doesNotMatch(stdout, /FAIL/);
  });

  it('help lists the backend\'s commands and the generic ones', () => {
    const { status, stdout } = admin([identifier, 'help']);
    assert.equal(status, 0);
    assert.match(stdout, /fs admin commands/);
    assert.match(stdout, /check-protocol/);
  });

  it('exits 2 for an unknown command, a bad identifier or missing arguments', () => {
    const unknown = admin([identifier, 'no-such-command']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown admin command/);
    assert.equal(admin(["backend-fs fs '/unterminated", 'info']).status, 2);
    assert.equal(admin([]).status, 2);
  });

  it('exits 1 when the archive cannot be opened, with a message and no stack trace', () => {
    const { status, stderr } = admin([`backend-fs fs /etc`, 'info']);
    assert.equal(status, 1);
    assert.match(stderr, /not a cairn fs archive/);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  it('reads commands from standard input when none is given', () => {
    const { status, stdout, stderr } = admin([identifier], 'info\n\ntags\nno-such-command\nquit\n');
    assert.match(stdout, /backend:\s+fs/);
    assert.match(stdout, /home/);
    assert.match(stderr, /no-such-command/);
    assert.equal(status, 1, 'a failed command makes a non-interactive session exit 1');
    assert.equal(admin([identifier], 'info\nquit\n').status, 0);
  });

  it('--help explains usage and exits 0', () => {
    const { status, stdout } = admin(['--help']);
    assert.equal(status, 0);
    assert.match(stdout, /Usage: archive-admin/);
    assert.match(stdout, /Exit status/);
  });
});
