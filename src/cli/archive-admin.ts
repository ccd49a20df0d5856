#!/usr/bin/env node
/**
 * archive-admin 'IDENTIFIER' [COMMAND [ARGS...]]
 *
 * Runs one admin command on any archive and prints its text (or, with
 * --json, its data); with no command, an interactive prompt.
 * Exit status: 0 ok, 1 the command failed, 2 usage error.
 */
import { Command, CommanderError } from 'commander';
import { endOnOutputErrors } from './output-errors.js';
import { cairnVersion } from './version.js';
import type { Backend } from '../backends/backend.js';
import { toBackendError } from '../backends/errors.js';
import { openArchive } from '../backends/open.js';
import { interactiveAdmin } from '../admin/interactive.js';
import { runAdminCommand } from '../admin/run-admin-command.js';
import { IdentifierError, redactIdentifier } from '../protocol/identifier.js';

const program = new Command('archive-admin')
  .description('Run maintenance commands on a cairn archive, given by its identifier (a quoted command line such as \'backend-fs fs /srv/archive\').')
  .argument('<identifier>', 'archive identifier, quoted as one argument')
  .argument('[command]', 'admin command; omit for an interactive prompt ("help" lists them)')
  .argument('[args...]', 'arguments of the command')
  .option('--json', 'print the machine-readable data of the result as JSON')
  .option('--spawn', 'run cairn\'s own backends as child processes instead of in this process')
  .version(`archive-admin (cairn) ${cairnVersion()}`, '-V, --version', 'print the version of cairn')
  .passThroughOptions()
  .exitOverride()
  .configureOutput({ writeErr: (text) => process.stderr.write(text) })
  .addHelpText('after', `
Commands every archive answers: help, info, tags, stats, check-protocol [--write], force-unlock TAG.
Backends add their own (run "help").

Examples:
  archive-admin 'backend-fs fs /srv/archive' info
  archive-admin --json 'backend-fs fs /srv/archive' stats
  archive-admin 'ssh backup@vault backend-fs fs /srv/archive' check-protocol

Exit status: 0 ok, 1 the command failed, 2 usage error.`);

async function main(): Promise<number> {
  endOnOutputErrors('archive-admin');
  try {
    program.parse(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  const [identifier, command, args] = program.processedArgs as [string, string | undefined, string[]];
  const options = program.opts<{ json?: boolean; spawn?: boolean }>();
  const json = options.json === true;
  const label = redactIdentifier(identifier);
  let backend: Backend;
  try {
    backend = await openArchive(identifier, { spawnOwn: options.spawn === true });
  } catch (err) {
    process.stderr.write(`archive-admin: ${err instanceof IdentifierError ? err.message : toBackendError(err).message}\n`);
    return err instanceof IdentifierError ? 2 : 1;
  }
  let status = 0;
  try {
    if (command === undefined) {
      status = (await interactiveAdmin(backend, label, json)) > 0 && !process.stdin.isTTY ? 1 : 0;
    } else {
      const result = await runAdminCommand(backend, command, args);
      process.stdout.write(`${json ? JSON.stringify(result.data, null, 2) : result.text}\n`);
    }
  } catch (err) {
    const error = toBackendError(err);
    process.stderr.write(`archive-admin: ${command ?? ''}: ${error.message}\n`);
    status = error.code === 'badRequest' && /^usage:|unknown admin command/.test(error.message) ? 2 : 1;
  }
  try {
    await backend.close();
  } catch (err) {
    process.stderr.write(`archive-admin: closing the archive: ${toBackendError(err).message}\n`);
    if (status === 0) status = 1;
  }
  return status;
}

process.exitCode = await main();
