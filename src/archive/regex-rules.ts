import { BackendError } from '../backends/errors.js';

/**
 * lafs-backup-tool's ordered include/exclude list, rsync-like: each path,
 * relative to the snapshot source with a leading `/` (directories with a
 * trailing `/`), is tested against the rules in order; the first match
 * decides; no match includes. An excluded directory is not descended.
 */
export interface RegexRule {
  include: boolean;
  pattern: RegExp;
}

export function regexRule(include: boolean, source: string): RegexRule {
  try {
    return { include, pattern: new RegExp(source) };
  } catch (err) {
    throw new BackendError('badRequest', `bad ${include ? 'include' : 'exclude'} pattern ${JSON.stringify(source)}: ${(err as Error).message}`);
  }
}

/** True when `path` (with a trailing `/` for a directory) is to be included. */
export function includedByRegex(rules: readonly RegexRule[], path: string): boolean {
  for (const rule of rules) if (rule.pattern.test(path)) return rule.include;
  return true;
}

/** The decision of the first matching pattern, or null when none matches. */
export function matchRegex(rules: readonly RegexRule[], path: string): boolean | null {
  for (const rule of rules) if (rule.pattern.test(path)) return rule.include;
  return null;
}
