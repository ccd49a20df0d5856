import type { AdminResult } from './backend.js';
import { BackendError } from './errors.js';

/** One admin command of a backend. */
export interface AdminCommand {
  usage: string;
  summary: string;
  run(args: string[]): Promise<AdminResult> | AdminResult;
}

export type AdminTable = Record<string, AdminCommand>;

/**
 * Runs a command from a backend's table. `help` is generated from the table;
 * every backend also lists `info`. An unknown command is a badRequest.
 */
export async function runAdmin(backendName: string, table: AdminTable, command: string, args: string[]): Promise<AdminResult> {
  if (typeof command !== 'string' || !Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
    throw new BackendError('badRequest', 'admin takes a command name and an array of string arguments');
  }
  if (command === 'help') return adminHelp(backendName, table);
  const entry = Object.hasOwn(table, command) ? table[command] : undefined;
  if (entry === undefined) {
    throw new BackendError('badRequest', `unknown admin command ${JSON.stringify(command)} for ${backendName}; try "help"`);
  }
  return entry.run(args);
}

export function adminHelp(backendName: string, table: AdminTable): AdminResult {
  const rows = [['help', 'list the admin commands'] as const, ...Object.entries(table).map(([, c]) => [c.usage, c.summary] as const)];
  const width = Math.max(...rows.map(([u]) => u.length));
  const text = [`${backendName} admin commands:`, ...rows.map(([u, s]) => `  ${u.padEnd(width)}  ${s}`)].join('\n');
  return { text, data: rows.map(([usage, summary]) => ({ usage, summary })) };
}

/** Formats a record as aligned "key: value" lines. */
export function formatFields(fields: Record<string, unknown>): string {
  const width = Math.max(0, ...Object.keys(fields).map((k) => k.length));
  return Object.entries(fields)
    .map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join('\n');
}

export function expectArgs(args: string[], count: number, usage: string): void {
  if (args.length !== count) throw new BackendError('badRequest', `usage: ${usage}`);
}

/** Parses a non-negative integer admin argument. */
export function parseCount(value: string | undefined, what: string): number {
  if (value === undefined || !/^\d+$/.test(value)) {
    throw new BackendError('badRequest', `${what} must be a non-negative integer`);
  }
  return Number(value);
}

/** The `stats` admin command of a store: the protocol stats operation, as aligned text. */
export function statsCommand(summary: string, stats: () => Promise<Record<string, unknown>>): AdminCommand {
  return {
    usage: 'stats',
    summary,
    run: async () => {
      const data = await stats();
      return { text: formatFields(data), data };
    },
  };
}
