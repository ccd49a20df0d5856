/**
 * A program written only from docs/protocol.md, in another language (Python,
 * standard library only), uses backend-fs through every operation, including
 * pipelined requests and reopening (issue 2, "Done when").
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ownCommandPath } from '../src/backends/open.js';
import { scratchDir } from './support/scratch.js';

const client = fileURLToPath(new URL('../../test/foreign/client.py', import.meta.url));

describe('a client in another language', () => {
  it('uses backend-fs through every operation, pipelined, and after reopening', () => {
    const scratch = scratchDir();
    try {
      const result = spawnSync('python3', [client, process.execPath, ownCommandPath('backend-fs'), `${scratch.dir}/archive`], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(result.error, undefined, `python3 could not run: ${String(result.error)}`);
      assert.equal(result.status, 0, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
      assert.match(result.stdout, /^OK$/m);
    } finally {
      scratch.remove();
    }
  });
});
