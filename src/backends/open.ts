import { fileURLToPath } from 'node:url';
import type { Backend, LogLevel } from './backend.js';
import { BackendError, toBackendError } from './errors.js';
import { UsageError, type BackendContext } from './factory.js';
import { findBackend } from './registry.js';
import { openArchive as openIdentifier, type OpenArchiveOptions } from '../protocol/open-archive.js';
import { redactIdentifier } from '../protocol/identifier.js';

export interface OpenOptions extends Omit<OpenArchiveOptions, 'resolveOwn'> {
  /**
   * Spawn cairn's own backends as child processes (by absolute path) instead
   * of running them in this process. Default: the CAIRN_SPAWN_BACKENDS
   * environment variable is "1".
   */
  spawnOwn?: boolean;
}

/** The executable script of one of our commands, found next to this module, not on PATH. */
export function ownCommandPath(command: string): string {
  return fileURLToPath(new URL(`../cli/${command}.js`, import.meta.url));
}

function stderrLogger(): (level: LogLevel, text: string) => void {
  return (level, text) => process.stderr.write(`${level}: ${text}\n`);
}

/**
 * Opens an archive identifier (protocol.md, "Archive identifiers"). cairn's
 * own backends run in this process (or are spawned by absolute path, so a
 * fresh checkout works before anything is on PATH); anything else, `ssh`
 * included, is spawned as given.
 */
export function openArchive(identifier: string, options: OpenOptions = {}): Promise<Backend> {
  const spawnOwn = options.spawnOwn ?? process.env.CAIRN_SPAWN_BACKENDS === '1';
  const log = options.onLog ?? stderrLogger();
  const context: BackendContext = {
    log,
    openArchive: (inner) => openArchive(inner, options),
  };
  return openIdentifier(identifier, {
    ...options,
    resolveOwn: (argv) => {
      let found;
      try {
        found = findBackend(argv);
      } catch (err) {
        throw new BackendError('badRequest', (err as Error).message);
      }
      if (found === undefined) return undefined;
      const command = found.backend.command;
      if (spawnOwn) return { argv: [process.execPath, ownCommandPath(command), ...argv.slice(1)] };
      let opener: (context: BackendContext) => Promise<Backend>;
      try {
        opener = found.backend.prepare(found.args);
      } catch (err) {
        if (err instanceof UsageError) throw new BackendError('badRequest', `${command}: ${err.message}`);
        throw err;
      }
      return {
        inProcess: async () => {
          try {
            return await opener(context);
          } catch (err) {
            const error = toBackendError(err);
            throw new BackendError(error.code, `cannot open archive ${redactIdentifier(identifier)}: ${error.message}`);
          }
        },
      };
    },
  });
}
