/**
 * `archive-admin` reaches the inner archive's admin commands through each
 * proxy, and through a chain of them (the real archive-admin binary, with the
 * backends in its process and spawned).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { openArchive, ownCommandPath } from '../src/backends/open.js';
import { scratchDir } from './support/scratch.js';

const run = promisify(execFile);
const scratch = scratchDir('cairn-proxy-admin-');
after(() => scratch.remove());

async function archiveAdmin(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [ownCommandPath('archive-admin'), ...args]);
  return stdout;
}

describe('archive-admin through proxy backends', () => {
  const dir = `${scratch.dir}/archive`;
  const cache = `backend-cache ${scratch.dir}/cache.sqlite 'backend-fs fs ${dir}'`;
  const throttle = `backend-throttle --write 10M 'backend-fs fs ${dir}'`;
  const faulty = `backend-faulty --seed 2 'backend-fs fs ${dir}'`;
  const chain = `backend-cache ${scratch.dir}/chain.sqlite 'backend-throttle --read 20M "backend-faulty --seed 3 \\"backend-fs fs ${dir}\\""'`;

  before(async () => {
    const fs = await openArchive(`backend-fs fs ${dir}`, { onLog: () => undefined });
    await fs.put('block', Buffer.from('data'));
    await fs.close();
  });

  for (const spawn of [[], ['--spawn']]) {
    const how = spawn.length === 0 ? 'in process' : 'spawned';

    it(`info through cache, throttle and faulty shows the proxy, then the fs store (${how})`, async () => {
      for (const [identifier, own] of [[cache, /cacheFile:/], [throttle, /write: +10 MiB\/s/], [faulty, /seed: +2/]] as const) {
        const text = await archiveAdmin(...spawn, identifier, 'info');
        assert.match(text, own, identifier);
        assert.match(text, new RegExp(`inner archive \\(fs\\):[\\s\\S]*directory: +${dir}`), identifier);
      }
    });

    it(`help lists the proxy's commands, then the inner archive's, then archive-admin's (${how})`, async () => {
      const text = await archiveAdmin(...spawn, throttle, 'help');
      assert.match(text, /throttle admin commands:[\s\S]*set-rate[\s\S]*fs admin commands:[\s\S]*archive-admin commands/);
    });

    it(`a chain cache -> throttle -> faulty -> fs passes fs's own commands down (${how})`, async () => {
      const info = await archiveAdmin(...spawn, chain, 'info');
      assert.match(info, /cacheFile:[\s\S]*inner archive \(throttle\):[\s\S]*read: +20 MiB\/s[\s\S]*inner archive \(faulty\):[\s\S]*inner archive \(fs\):/);
      const stats = JSON.parse(await archiveAdmin(...spawn, '--json', chain, 'inner', 'stats')) as Record<string, unknown>;
      assert.equal(stats.blocks, 1, 'the fs store\'s admin stats, through three proxies');
      const rates = await archiveAdmin(...spawn, chain, 'rates');
      assert.match(rates, /read: +20 MiB\/s/, 'an inner proxy\'s own command');
    });
  }

  it('the protocol stats through the cache adds its counters to the store\'s', async () => {
    const stats = JSON.parse(await archiveAdmin('--json', cache, 'stats')) as Record<string, unknown>;
    assert.equal(stats.blocks, 1);
    assert.equal(typeof stats.cacheEntries, 'number');
    assert.equal(typeof stats.cacheHits, 'number');
  });
});
