import type { Backend, LogLevel } from './backend.js';

/** What a backend gets from whoever opens it. */
export interface BackendContext {
  /** Sends a notice (protocol.md: ["log", level, text]) towards the client. */
  log(level: LogLevel, text: string): void;
  /** Opens an inner archive identifier (for proxies). */
  openArchive(identifier: string): Promise<Backend>;
}

/** A mistake in a backend's command line: reported as usage, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Each backend folder exports one factory (conventions.md, 4). `command` is
 * the executable; for `backend-fs`, the first argument (`fs`, `splitlog`,
 * `memory`) chooses the store and is `name`.
 */
export interface BackendFactory<Config = unknown> {
  command: string;
  /** The store's name: the first argument for `backend-fs`, else equal to the command's suffix. */
  name: string;
  /** True when argv[0] must equal `name` (the `backend-fs` family). */
  subcommand: boolean;
  usage: string;
  /** Parses the arguments after the command (and after the subcommand). Throws UsageError. */
  parseArgs(argv: string[]): Config;
  open(config: Config, context: BackendContext): Promise<Backend>;
}

/**
 * A factory with its config type closed over, as the registry holds them:
 * `prepare` parses the arguments (throwing UsageError) and returns the opener.
 */
export interface RegisteredBackend {
  command: string;
  name: string;
  subcommand: boolean;
  usage: string;
  prepare(argv: string[]): (context: BackendContext) => Promise<Backend>;
}

export function register<Config>(factory: BackendFactory<Config>): RegisteredBackend {
  return {
    command: factory.command,
    name: factory.name,
    subcommand: factory.subcommand,
    usage: factory.usage,
    prepare(argv) {
      const config = factory.parseArgs(argv);
      return (context) => factory.open(config, context);
    },
  };
}
