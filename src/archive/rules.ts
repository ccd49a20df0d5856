import { BackendError } from '../backends/errors.js';

/**
 * Ugarit's rule language in a readable syntax (issue 7): `.cairn` files in
 * directories and `rules` in the config. A rule is `include EXPR` or
 * `exclude EXPR`; expressions are
 *
 *     glob PATTERN            path relative to the rule's directory (* ? **)
 *     name PATTERN            the last component only
 *     modified-within 7d      s, m, h, d, w
 *     size-above 100M         size-below 1k
 *     type dir                file, dir, symlink, other
 *     all
 *     not E    E and E    E or E    ( E )
 *
 * Patterns with spaces go in double quotes. Rules are bound to the directory
 * of their `.cairn` file (or a config rule's `under`): they apply only below
 * it. The last matching rule decides, so a deeper `.cairn` file overrides
 * the ones above it and the config.
 */
export type Expr =
  | { kind: 'glob' | 'name'; pattern: RegExp }
  | { kind: 'modified-within'; ms: number }
  | { kind: 'size-above' | 'size-below'; bytes: number }
  | { kind: 'type'; type: string }
  | { kind: 'all' }
  | { kind: 'not'; expr: Expr }
  | { kind: 'and' | 'or'; left: Expr; right: Expr };

export interface Rule {
  include: boolean;
  expr: Expr;
  /** Absolute directory the rule is bound to, or null for the snapshot's source itself. */
  base: string | null;
  source: string;
}

export interface Candidate {
  /** Absolute path. */
  abs: string;
  /** Path relative to the snapshot source, no leading slash. */
  rel: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mtimeMs: number;
}

function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i += 1) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      out += '.*';
      i += 1;
      if (glob[i + 1] === '/') i += 1;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|([()])|([^\s()"]+))/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(text)) !== null) {
    if (m[0].trim() === '') break;
    tokens.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3] as string));
    last = re.lastIndex;
  }
  if (text.slice(last).trim() !== '') throw new BackendError('badRequest', `cannot read rule near ${JSON.stringify(text.slice(last))}`);
  return tokens;
}

export function parseExpr(text: string): Expr {
  const tokens = tokenize(text);
  let pos = 0;
  const next = (what: string): string => {
    const t = tokens[pos];
    if (t === undefined) throw new BackendError('badRequest', `rule ${JSON.stringify(text)}: expected ${what}`);
    pos += 1;
    return t;
  };
  const atom = (): Expr => {
    const word = next('an expression');
    switch (word) {
      case '(': {
        const e = or();
        if (next("')'") !== ')') throw new BackendError('badRequest', `rule ${JSON.stringify(text)}: expected ')'`);
        return e;
      }
      case 'not': return { kind: 'not', expr: atom() };
      case 'all': return { kind: 'all' };
      case 'glob': case 'name': return { kind: word, pattern: globToRegExp(next('a pattern')) };
      case 'modified-within': {
        const d = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(next('a duration'));
        if (d === null) throw new BackendError('badRequest', `rule ${JSON.stringify(text)}: a duration is a number and s, m, h, d or w`);
        return { kind: 'modified-within', ms: Number(d[1]) * (UNITS[d[2] as string] as number) };
      }
      case 'size-above': case 'size-below': {
        const s = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)$/.exec(next('a size'));
        if (s === null) throw new BackendError('badRequest', `rule ${JSON.stringify(text)}: a size is a number with k, M, G or T`);
        return { kind: word, bytes: Number(s[1]) * (SIZE_UNITS[(s[2] as string).toLowerCase()] as number) };
      }
      case 'type': {
        const t = next('a type');
        if (!['file', 'dir', 'symlink', 'other'].includes(t)) throw new BackendError('badRequest', `rule ${JSON.stringify(text)}: type is file, dir, symlink or other`);
        return { kind: 'type', type: t };
      }
      default:
        throw new BackendError('badRequest', `rule ${JSON.stringify(text)}: unknown word ${JSON.stringify(word)}`);
    }
  };
  const and = (): Expr => {
    let left = atom();
    while (tokens[pos] === 'and') {
      pos += 1;
      left = { kind: 'and', left, right: atom() };
    }
    return left;
  };
  const or = (): Expr => {
    let left = and();
    while (tokens[pos] === 'or') {
      pos += 1;
      left = { kind: 'or', left, right: and() };
    }
    return left;
  };
  const expr = or();
  if (pos !== tokens.length) throw new BackendError('badRequest', `rule ${JSON.stringify(text)}: unexpected ${JSON.stringify(tokens[pos])}`);
  return expr;
}

/** One rule line: `include EXPR` or `exclude EXPR`. */
export function parseRule(line: string, base: string | null): Rule {
  const m = /^\s*(include|exclude)\s+(.+)$/.exec(line);
  if (m === null) throw new BackendError('badRequest', `rule ${JSON.stringify(line.trim())}: starts with include or exclude`);
  return { include: m[1] === 'include', expr: parseExpr(m[2] as string), base, source: line.trim() };
}

/** A `.cairn` file: one rule a line; blank lines and `#` comments ignored. */
export function parseRuleFile(text: string, dir: string): Rule[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => parseRule(l, dir));
}

function test(expr: Expr, rel: string, c: Candidate, now: number): boolean {
  switch (expr.kind) {
    case 'glob': return expr.pattern.test(rel);
    case 'name': return expr.pattern.test(rel.slice(rel.lastIndexOf('/') + 1));
    case 'modified-within': return now - c.mtimeMs <= expr.ms;
    case 'size-above': return c.size > expr.bytes;
    case 'size-below': return c.size < expr.bytes;
    case 'type': return c.type === expr.type;
    case 'all': return true;
    case 'not': return !test(expr.expr, rel, c, now);
    case 'and': return test(expr.left, rel, c, now) && test(expr.right, rel, c, now);
    case 'or': return test(expr.left, rel, c, now) || test(expr.right, rel, c, now);
  }
}

/** The decision of the last rule that applies and matches, or null when none does. */
export function decide(rules: readonly Rule[], c: Candidate, now = Date.now()): boolean | null {
  for (let i = rules.length - 1; i >= 0; i -= 1) {
    const rule = rules[i] as Rule;
    let rel: string;
    if (rule.base === null) rel = c.rel;
    else if (c.abs.startsWith(`${rule.base}/`)) rel = c.abs.slice(rule.base.length + 1);
    else continue;
    if (test(rule.expr, rel, c, now)) return rule.include;
  }
  return null;
}
