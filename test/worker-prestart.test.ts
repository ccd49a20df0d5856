/**
 * Worker threads started before the cairn command's modules load
 * (src/archive/worker-prestart.ts, src/cli/cairn.ts): the snapshot's
 * ListingThread adopts a prestarted listing worker and it lists as a thread
 * started by the snapshot does, an extract's RestoreThread adopts a
 * prestarted restore worker and it writes files; one nobody adopts keeps no
 * process alive; one that ended before it was adopted is not adopted. And `commandOf` finds the subcommand on a
 * command line as commander does, knowing every global option that takes a
 * value.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prestartWorker } from '../src/archive/worker-prestart.js';
import { BlockCodec, blockKey } from '../src/archive/block-codec.js';
import { BlockType } from '../src/archive/format.js';
import { deriveKeys, newMasterKey } from '../src/archive/keys.js';
import { ListingThread } from '../src/archive/listing-thread.js';
import { RestoreThread } from '../src/archive/restore-thread.js';
import { commandOf, GLOBAL_OPTIONS_WITH_VALUE } from '../src/cli/command-of.js';
import { CAIRN_CLI, cliEnvironment } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-worker-prestart-');
after(() => scratch.remove());

test('a prestarted listing worker is adopted by the next ListingThread, which lists with it; the one after starts its own', async () => {
  const root = path.join(scratch.dir, 'tree');
  for (const sub of ['a', 'a/b', 'c']) mkdirSync(path.join(root, sub), { recursive: true });
  writeFileSync(path.join(root, 'a', 'b', 'file'), 'x');
  const prestarted = prestartWorker('listing-worker.js');
  const adopted = new ListingThread([root]);
  try {
    assert.ok(prestarted.listenerCount('message') > 0, 'the thread took the prestarted worker');
    for (const [dir, names] of [['', ['a', 'c']], ['a', ['b']], ['a/b', ['file']], ['c', []]] as const) {
      const listing = await adopted.take(Buffer.from(path.join(root, dir)));
      assert.ok(listing !== null, `${dir || '.'} listed by the adopted worker`);
      assert.deepEqual(listing.names.map((n) => n.toString()), names);
    }
    assert.equal(adopted.listingsTaken, 4);
  } finally {
    adopted.close();
  }
  // Nothing prestarted any more: a second thread starts a worker of its own, and lists as well.
  const own = new ListingThread([root]);
  try {
    assert.deepEqual((await own.take(Buffer.from(root)))?.names.map((n) => n.toString()), ['a', 'c']);
  } finally {
    own.close();
  }
});

test('a prestarted restore worker is adopted by the next RestoreThread, which writes files with it (several at once, the first message its key)', async () => {
  const keys = deriveKeys(newMasterKey());
  const codec = new BlockCodec(keys.block, 'zstd', 3);
  const dir = path.join(scratch.dir, 'restored');
  mkdirSync(dir);
  const prestarted = prestartWorker('restore-worker.js');
  const thread = new RestoreThread(keys.block);
  try {
    const writes = ['a', 'b', 'c'].map((name) => {
      const plaintext = Buffer.from(`the file ${name}\n`.repeat(50));
      const key = blockKey(keys.blockHash, BlockType.data, plaintext);
      const job = { path: path.join(dir, name), key, size: plaintext.length, meta: { mode: 0o640, atime: 1_600_000_000, mtime: 1_600_000_000 } };
      return thread.write(thread.claim(job.size), job, codec.seal(key, BlockType.data, plaintext)).then((warnings) => {
        assert.deepEqual(warnings, []);
        assert.equal(readFileSync(job.path, 'utf8'), plaintext.toString());
      });
    });
    await Promise.all(writes);
    assert.ok(prestarted.listenerCount('message') > 0, 'the thread took the prestarted worker');
  } finally {
    await thread.close();
  }
});

test('prestarted workers nobody adopts keep no process alive (a child process)', () => {
  const prestart = JSON.stringify(path.resolve(fileURLToPath(new URL('../src/archive/worker-prestart.js', import.meta.url))));
  const started = Date.now();
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    const { prestartWorker } = await import(${prestart});
    prestartWorker('listing-worker.js');
    prestartWorker('restore-worker.js');
    // The worker waits for its data; this process ends anyway once its own work is done.
    setTimeout(() => console.log('done'), 50);
  `], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(out.trim(), 'done');
  assert.ok(Date.now() - started < 15_000);
});

test('a prestarted listing worker that ended before anyone adopted it is not adopted: the thread starts its own (terminated here: a crash cannot be caused for real)', { timeout: 20_000 }, async () => {
  const root = path.join(scratch.dir, 'tree2');
  mkdirSync(path.join(root, 'a'), { recursive: true });
  const worker = prestartWorker('listing-worker.js');
  assert.equal(prestartWorker('listing-worker.js'), worker, 'one prestarted worker of a kind at a time');
  await worker.terminate();
  const again = prestartWorker('listing-worker.js');
  assert.notEqual(again, worker, 'an ended worker is not the one waiting');
  await again.terminate();
  const thread = new ListingThread([root]);
  try {
    assert.deepEqual((await thread.take(Buffer.from(root)))?.names.map((n) => n.toString()), ['a']);
  } finally {
    thread.close();
  }
});


test('commandOf finds the subcommand past the global options and their values, in both forms', () => {
  assert.equal(commandOf(['snapshot', 'home', '/home']), 'snapshot');
  assert.equal(commandOf(['--config', 'snapshot', 'ls', 'home']), 'ls', 'a value named like a command is a value');
  assert.equal(commandOf(['--config=/etc/cairn.toml', '--archive', 'x y', 'snapshot', 'home', '.']), 'snapshot');
  assert.equal(commandOf(['--passphrase-file', 'f', '--passphrase-command', 'pass cairn', 'extract', 'home', '/tmp']), 'extract');
  assert.equal(commandOf(['--help']), undefined);
  assert.equal(commandOf([]), undefined);
});

test('commandOf knows every global option of the cairn command that takes a value (as its --help lists them)', () => {
  const help = execFileSync(process.execPath, [CAIRN_CLI, '--help'], { encoding: 'utf8', env: cliEnvironment() });
  const options = help.split('\nCommands:')[0]?.split('\n').flatMap((line) => /^\s+(--[a-z-]+) <[^>]+>/.exec(line)?.[1] ?? []) ?? [];
  assert.ok(options.length >= 4, `options with a value found in --help: ${options.join(', ')}`);
  assert.deepEqual([...options].sort(), [...GLOBAL_OPTIONS_WITH_VALUE].sort());
});
