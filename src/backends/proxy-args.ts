import { UsageError } from './factory.js';

/**
 * A small parser for proxy command lines: `--name VALUE` or `--name=VALUE`
 * options (some repeatable), then positional arguments, the last of which is
 * the inner archive identifier. Nothing is printed: mistakes are UsageErrors,
 * because a backend's stdout carries the protocol.
 */
export interface OptionSpec {
  /** Option names without the leading dashes, e.g. "read". */
  values: readonly string[];
  /** Options that may be given several times. */
  repeatable?: readonly string[];
  /** Options that take no value. */
  flags?: readonly string[];
}

export interface ParsedArgs {
  /** The last value of each single option; every value of a repeatable one, in order. */
  options: Map<string, string[]>;
  positional: string[];
}

export function parseProxyArgs(argv: readonly string[], spec: OptionSpec): ParsedArgs {
  const options = new Map<string, string[]>();
  const positional: string[] = [];
  const known = new Set([...spec.values, ...(spec.flags ?? [])]);
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg.length === 2) {
      positional.push(arg);
      i += 1;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (!known.has(name)) {
      const names = [...known].map((n) => `--${n}`).join(', ');
      throw new UsageError(`unknown option --${name}${names === '' ? '' : `; known: ${names}`}`);
    }
    let value: string;
    if (spec.flags?.includes(name) === true) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      value = 'true';
      i += 1;
    } else if (eq >= 0) {
      value = arg.slice(eq + 1);
      i += 1;
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`--${name} needs a value`);
      value = next;
      i += 2;
    }
    const previous = options.get(name);
    if (previous !== undefined && spec.repeatable?.includes(name) !== true) {
      throw new UsageError(`--${name} given twice`);
    }
    options.set(name, [...(previous ?? []), value]);
  }
  return { options, positional };
}

/** The one positional argument every proxy takes: the inner archive identifier. */
export function innerIdentifier(positional: readonly string[], usage: string): string {
  if (positional.length !== 1 || (positional[0] as string).trim() === '') {
    throw new UsageError(`expected the inner archive identifier as the last argument, quoted as one word (${usage})`);
  }
  return positional[0] as string;
}
