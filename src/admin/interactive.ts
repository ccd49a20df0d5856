import * as readline from 'node:readline';
import type { Backend } from '../backends/backend.js';
import { toBackendError } from '../backends/errors.js';
import { IdentifierError, splitIdentifier } from '../protocol/identifier.js';
import { runAdminCommand } from './run-admin-command.js';

/**
 * The interactive prompt of `archive-admin`: one command per line, split
 * with shell quoting, with line history; `quit`, `exit` or end of input
 * leaves. Returns the number of commands that failed.
 */
export async function interactiveAdmin(backend: Backend, label: string, json: boolean): Promise<number> {
  const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal, historySize: 1000 });
  if (terminal) process.stdout.write(`connected to ${label} (${backend.info().backend}); "help" lists commands, "quit" leaves\n`);
  rl.setPrompt(terminal ? 'archive-admin> ' : '');
  let failures = 0;
  rl.prompt();
  for await (const line of rl) {
    let words: string[];
    try {
      words = line.trim() === '' ? [] : splitIdentifier(line);
    } catch (err) {
      process.stderr.write(`${err instanceof IdentifierError ? err.message : String(err)}\n`);
      failures += 1;
      rl.prompt();
      continue;
    }
    const [command, ...args] = words;
    if (command === 'quit' || command === 'exit') break;
    if (command !== undefined) {
      try {
        const result = await runAdminCommand(backend, command, args);
        process.stdout.write(`${json ? JSON.stringify(result.data) : result.text}\n`);
      } catch (err) {
        const error = toBackendError(err);
        process.stderr.write(`${command}: ${error.code}: ${error.message}\n`);
        failures += 1;
      }
    }
    rl.prompt();
  }
  rl.close();
  return failures;
}
