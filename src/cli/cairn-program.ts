/**
 * The cairn command's program: its global options and subcommands, parsed
 * and run. cairn.ts loads it, after starting the worker thread a snapshot
 * or an extract needs first.
 *
 * One file per subcommand under cairn/, each a plain function plus its wiring.
 */
import { Command, CommanderError } from 'commander';
import { endOnOutputErrors } from './output-errors.js';
import { cairnVersion } from './version.js';
import type { GlobalOptions } from './cairn/context.js';
import { register as catCommand } from './cairn/cat.js';
import { register as catStream } from './cairn/cat-stream.js';
import { register as diff } from './cairn/diff.js';
import { register as extract } from './cairn/extract.js';
import { register as fork } from './cairn/fork.js';
import { register as init } from './cairn/init.js';
import { register as log } from './cairn/log.js';
import { register as ls } from './cairn/ls.js';
import { register as passwd } from './cairn/passwd.js';
import { register as snapshot } from './cairn/snapshot.js';
import { register as snapshotStream } from './cairn/snapshot-stream.js';
import { register as tags } from './cairn/tags.js';

const program = new Command('cairn')
  .description('zero-knowledge, deduplicated, encrypted backups')
  .option('--config <file>', 'config file (default: CAIRN_CONFIG or ~/.config/cairn/config.toml)')
  .option('--archive <identifier>', 'archive identifier (overrides the config file; for init: the archive to create)')
  .option('--passphrase-command <command>', 'run this command and read the passphrase from its output')
  .option('--passphrase-file <file>', 'read the passphrase from the first line of this file')
  .version(`cairn ${cairnVersion()}`, '-V, --version', 'print the version of cairn')
  .exitOverride()
  .showHelpAfterError();

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
for (const add of [init, passwd, snapshot, snapshotStream, tags, log, ls, catCommand, catStream, extract, fork, diff]) add(program, globals);

endOnOutputErrors('cairn');
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else throw err;
}
