import { fsFactory } from './fs/factory.js';
import { memoryFactory } from './memory/factory.js';
import { splitlogFactory } from './splitlog/factory.js';
import { sftpFactory } from './sftp/factory.js';
import { s3Factory } from './s3/factory.js';
import { cacheFactory } from './cache/factory.js';
import { throttleFactory } from './throttle/factory.js';
import { faultyFactory } from './faulty/factory.js';
import { replicatedFactory } from '../replicate/factory.js';
import { register, UsageError, type RegisteredBackend } from './factory.js';

/** Every backend cairn ships (conventions.md, 4: one line each, no registration by side effect). */
export const BACKENDS: readonly RegisteredBackend[] = [
  register(fsFactory),
  register(splitlogFactory),
  register(memoryFactory),
  register(replicatedFactory),
  register(sftpFactory),
  register(s3Factory),
  register(cacheFactory),
  register(throttleFactory),
  register(faultyFactory),
];

/** The executables that serve backends, e.g. `backend-fs`. */
export function backendCommands(): string[] {
  return [...new Set(BACKENDS.map((b) => b.command))];
}

/** Usage lines of every backend served by `command`. */
export function usageOf(command: string): string {
  return BACKENDS.filter((b) => b.command === command).map((b) => `  ${b.usage}`).join('\n');
}

/**
 * Finds the backend for an argv whose first element is one of our commands,
 * and returns it with the arguments it parses. Undefined when the command is
 * not ours; UsageError when it is ours but the store name is unknown.
 */
export function findBackend(argv: readonly string[]): { backend: RegisteredBackend; args: string[] } | undefined {
  const [command, ...rest] = argv;
  const candidates = BACKENDS.filter((b) => b.command === command);
  if (candidates.length === 0) return undefined;
  const first = candidates[0] as RegisteredBackend;
  if (!first.subcommand) return { backend: first, args: rest };
  const [name, ...args] = rest;
  const backend = candidates.find((b) => b.name === name);
  if (backend === undefined) {
    throw new UsageError(`${command}: unknown store ${JSON.stringify(name ?? '')}; one of: ${candidates.map((b) => b.name).join(', ')}`);
  }
  return { backend, args };
}
