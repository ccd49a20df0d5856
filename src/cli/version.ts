import { readFileSync } from 'node:fs';

/**
 * cairn's version, from its package.json: three directories up from this
 * module in dist/src/cli (compiled or bundled alike), which every install
 * has (npm always packs package.json).
 */
export function cairnVersion(): string {
  try {
    const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}
