/**
 * Every store greets with `member` once it carries the reserved tag
 * #cairn-replica-member (protocol.md, "Start-up"), from the moment the tag is
 * set and after a reopen, in process and spawned.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MEMBER_TAG, memberTagValue } from '../src/backends/membership.js';
import { openArchive } from '../src/backends/open.js';
import { scratchDir } from './support/scratch.js';

const stores: Array<[string, (dir: string) => string]> = [
  ['fs', (dir) => `backend-fs fs ${dir}/a`],
  ['splitlog', (dir) => `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite`],
];

describe('replica membership in the greeting', () => {
  for (const [name, identifier] of stores) {
    for (const spawnOwn of [false, true]) {
      it(`${name} (${spawnOwn ? 'spawned' : 'in process'}) reports member after the tag is set, and after reopening`, async () => {
        const scratch = scratchDir();
        try {
          const id = identifier(scratch.dir);
          const first = await openArchive(id, { spawnOwn });
          assert.equal(first.info().member, undefined);
          await first.setTag(MEMBER_TAG, memberTagValue('set-one'));
          if (!spawnOwn) assert.equal(first.info().member, 'set-one');
          await first.close();
          const again = await openArchive(id, { spawnOwn });
          assert.equal(again.info().member, 'set-one');
          await again.removeTag(MEMBER_TAG);
          await again.close();
          const third = await openArchive(id, { spawnOwn });
          assert.equal(third.info().member, undefined);
          await third.close();
        } finally {
          scratch.remove();
        }
      });
    }
  }
});
