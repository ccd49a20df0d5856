/**
 * Archive identifiers (protocol.md, "Archive identifiers"): a command line,
 * split with POSIX shell quoting ('single', "double", backslash escapes) and
 * no expansion of `$`, globs or `~`. The argv is spawned directly, never
 * through `sh -c`.
 */
export class IdentifierError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentifierError';
  }
}

const OPERATORS = new Set(['|', '&', ';', '<', '>', '(', ')']);
const DOUBLE_QUOTE_ESCAPABLE = new Set(['$', '`', '"', '\\', '\n']);

export function splitIdentifier(identifier: string): string[] {
  const argv: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < identifier.length) {
    const c = identifier[i] as string;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) argv.push(word);
      word = '';
      inWord = false;
      i += 1;
    } else if (c === "'") {
      const end = identifier.indexOf("'", i + 1);
      if (end < 0) throw new IdentifierError('unterminated single quote in archive identifier');
      word += identifier.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      inWord = true;
      for (;;) {
        if (i >= identifier.length) throw new IdentifierError('unterminated double quote in archive identifier');
        const d = identifier[i] as string;
        if (d === '"') break;
        const next = identifier[i + 1];
        if (d === '\\' && next !== undefined && DOUBLE_QUOTE_ESCAPABLE.has(next)) {
          if (next !== '\n') word += next;
          i += 2;
        } else {
          word += d;
          i += 1;
        }
      }
      i += 1;
    } else if (c === '\\') {
      const next = identifier[i + 1];
      if (next === undefined) throw new IdentifierError('archive identifier ends with a lone backslash');
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (OPERATORS.has(c)) {
      throw new IdentifierError(`shell operator ${JSON.stringify(c)} in archive identifier: identifiers are run without a shell; quote it if it is part of an argument`);
    } else {
      word += c;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) argv.push(word);
  if (argv.length === 0) throw new IdentifierError('empty archive identifier');
  return argv;
}

/** Quotes one argument so that splitIdentifier gives it back unchanged. */
export function quoteArgument(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Joins an argv into an identifier. */
export function joinIdentifier(argv: readonly string[]): string {
  return argv.map(quoteArgument).join(' ');
}

/**
 * Hides secrets wherever an identifier is printed: passwords in URLs and the
 * values of password, secret and token options.
 */
export function redactIdentifier(identifier: string): string {
  return identifier
    .replace(/(\w+:\/\/[^/\s:@]+):[^@\s/]+@/g, '$1:***@')
    .replace(/((?:--)?[\w-]*(?:password|secret|token|passphrase)[\w-]*)([=\s]+)('[^']*'|"[^"]*"|\S+)/gi, '$1$2***');
}
