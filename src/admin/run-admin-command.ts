import type { AdminResult, Backend } from '../backends/backend.js';
import { BackendError } from '../backends/errors.js';
import { GENERIC_COMMANDS } from './generic-commands.js';

/**
 * Runs one admin command line on an open backend: `archive-admin`'s own
 * generic commands first, then the backend's admin commands. `help` shows
 * both.
 */
export async function runAdminCommand(backend: Backend, command: string, args: string[]): Promise<AdminResult> {
  const generic = Object.hasOwn(GENERIC_COMMANDS, command) ? GENERIC_COMMANDS[command] : undefined;
  if (generic !== undefined) return generic.run(backend, args);
  if (command === 'help') return help(backend);
  if (!backend.info().features.includes('admin')) {
    throw new BackendError('unsupported', `the ${backend.info().backend} backend has no admin commands; try help`);
  }
  return backend.admin(command, args);
}

async function help(backend: Backend): Promise<AdminResult> {
  let own: AdminResult = { text: '', data: null };
  if (backend.info().features.includes('admin')) own = await backend.admin('help', []);
  const rows = Object.values(GENERIC_COMMANDS).map((c) => [c.usage, c.summary] as const);
  const width = Math.max(...rows.map(([u]) => u.length));
  const generic = ['archive-admin commands (any backend):', ...rows.map(([u, s]) => `  ${u.padEnd(width)}  ${s}`)].join('\n');
  return {
    text: own.text === '' ? generic : `${own.text}\n\n${generic}`,
    data: { backend: own.data, generic: rows.map(([usage, summary]) => ({ usage, summary })) },
  };
}
