/**
 * The listing thread started before the cairn command's modules load
 * (src/archive/listing-prestart.ts, src/cli/cairn.ts): the snapshot's
 * ListingThread adopts it and it lists as a thread started by the snapshot
 * does; one nobody adopts keeps no process alive; one that ended before it
 * was adopted is not adopted. And `commandOf` finds the subcommand on a
 * command line as commander does, knowing every global option that takes a
 * value.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prestartListingWorker, takePrestartedListingWorker } from '../src/archive/listing-prestart.js';
import { ListingThread } from '../src/archive/listing-thread.js';
import { commandOf, GLOBAL_OPTIONS_WITH_VALUE } from '../src/cli/command-of.js';
import { CAIRN_CLI, cliEnvironment } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-listing-prestart-');
after(() => scratch.remove());

test('a prestarted listing worker is adopted by the next ListingThread, which lists with it; the one after starts its own', async () => {
  const root = path.join(scratch.dir, 'tree');
  for (const sub of ['a', 'a/b', 'c']) mkdirSync(path.join(root, sub), { recursive: true });
  writeFileSync(path.join(root, 'a', 'b', 'file'), 'x');
  prestartListingWorker();
  const adopted = new ListingThread([root]);
  try {
    assert.equal(takePrestartedListingWorker(), null, 'the thread took the prestarted worker');
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

test('a prestarted listing worker nobody adopts keeps no process alive (a child process)', () => {
  const prestart = JSON.stringify(path.resolve(fileURLToPath(new URL('../src/archive/listing-prestart.js', import.meta.url))));
  const started = Date.now();
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    const { prestartListingWorker } = await import(${prestart});
    prestartListingWorker();
    // The worker waits for its data; this process ends anyway once its own work is done.
    setTimeout(() => console.log('done'), 50);
  `], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(out.trim(), 'done');
  assert.ok(Date.now() - started < 15_000);
});

test('a prestarted listing worker that ended before anyone adopted it is not adopted: the thread starts its own (terminated here: a crash cannot be caused for real)', { timeout: 20_000 }, async () => {
  const root = path.join(scratch.dir, 'tree2');
  mkdirSync(path.join(root, 'a'), { recursive: true });
  const worker = prestartListingWorker();
  assert.equal(prestartListingWorker(), worker, 'one prestarted worker at a time');
  await worker.terminate();
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
