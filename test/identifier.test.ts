import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IdentifierError, joinIdentifier, redactIdentifier, splitIdentifier } from '../src/protocol/identifier.js';

const GOOD: Array<[string, string[]]> = [
  ['backend-fs fs /mnt/archive', ['backend-fs', 'fs', '/mnt/archive']],
  ['  backend-fs   fs\t/x  ', ['backend-fs', 'fs', '/x']],
  ["backend-cache /c.sqlite 'ssh backup@vault backend-fs splitlog /srv/logs /srv/meta.sqlite 900000000'",
    ['backend-cache', '/c.sqlite', 'ssh backup@vault backend-fs splitlog /srv/logs /srv/meta.sqlite 900000000']],
  [`a "b c" 'd e' f\\ g`, ['a', 'b c', 'd e', 'f g']],
  [`"x\\"y" "\\$HOME" '$HOME' ~ *`, ['x"y', '$HOME', '$HOME', '~', '*']],
  [`"a\\nb"`, ['a\\nb']],
  [`''`, ['']],
  [`a''b "c"d`, ['ab', 'cd']],
  [`'it'\\''s'`, ["it's"]],
  [`x \\\ny`, ['x', 'y']],
  [`backend-throttle --write 1MB/s "ssh host 'backend-fs fs /a b'"`, ['backend-throttle', '--write', '1MB/s', "ssh host 'backend-fs fs /a b'"]],
];

const BAD: Array<[string, RegExp]> = [
  ['', /empty/],
  ['   ', /empty/],
  ["a 'b", /unterminated single quote/],
  ['a "b', /unterminated double quote/],
  ['a \\', /lone backslash/],
  ['a | b', /shell operator "\|"/],
  ['a; rm -rf /', /shell operator ";"/],
  ['a > out', /shell operator ">"/],
  ['a & b', /shell operator "&"/],
];

describe('archive identifiers', () => {
  for (const [identifier, argv] of GOOD) {
    it(`splits ${JSON.stringify(identifier)}`, () => assert.deepEqual(splitIdentifier(identifier), argv));
  }
  for (const [identifier, message] of BAD) {
    it(`refuses ${JSON.stringify(identifier)}`, () => {
      assert.throws(() => splitIdentifier(identifier), (err: unknown) => err instanceof IdentifierError && message.test(err.message));
    });
  }

  it('joinIdentifier quotes so that splitting gives the argv back (property)', () => {
    fc.assert(fc.property(fc.array(fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0')), { minLength: 1, maxLength: 6 }), (argv) => {
      assert.deepEqual(splitIdentifier(joinIdentifier(argv)), argv);
    }));
  });

  it('redacts secrets wherever an identifier is printed', () => {
    assert.equal(redactIdentifier('backend-sftp sftp://me:hunter2@host/x'), 'backend-sftp sftp://me:***@host/x');
    assert.equal(redactIdentifier('tool --password hunter2 /x'), 'tool --password *** /x');
    assert.equal(redactIdentifier('tool --secret-key=abc /x'), 'tool --secret-key=*** /x');
    assert.equal(redactIdentifier('backend-fs fs /srv/archive'), 'backend-fs fs /srv/archive');
  });
});
