/**
 * The built cairn command is a bundle (scripts/bundle-cli.mjs): what it
 * loads at start (its entry's imports, and those of the program the entry
 * loads once it has started the listing thread) is its own chunks and a few packages, never the packages
 * that only some backends need (they come with the backend's chunk, loaded
 * when an archive of that kind is opened), nor cairn's modules one by one.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CAIRN_CLI } from './cairn-fixtures.js';

/** What `file` imports statically (dynamic `import()` left out), and the same for the chunks among them. */
function loadedAtStart(file: string, seen = new Set<string>()): Set<string> {
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(/^import\s+(?:[^;"]*?\s+from\s+)?"([^"]+)";/gms)) {
    const specifier = match[1] as string;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    if (specifier.startsWith('./')) loadedAtStart(path.join(path.dirname(file), specifier), seen);
  }
  return seen;
}

/** The chunk the entry imports dynamically: the program (src/cli/cairn-program.ts), always loaded. */
function programChunk(entry: string): string {
  const found = [...readFileSync(entry, 'utf8').matchAll(/\bimport\("(\.\/cairn-chunk-[A-Z0-9]+\.js)"\)/g)].map((m) => m[1] as string);
  assert.equal(found.length, 1, `the entry's dynamic imports: ${found.join(', ')}`);
  return path.join(path.dirname(entry), found[0] as string);
}

test('the cairn command loads its own chunks and a few packages at start, not the backends\' packages', () => {
  const seen = loadedAtStart(CAIRN_CLI);
  const loaded = [...loadedAtStart(programChunk(CAIRN_CLI), seen)];
  const relative = loaded.filter((s) => s.startsWith('.'));
  assert.ok(relative.length > 0 && relative.every((s) => /^\.\/cairn-chunk-[A-Z0-9]+\.js$/.test(s)), `relative imports: ${relative.join(', ')}`);
  const packages = loaded.filter((s) => !s.startsWith('.') && !s.startsWith('node:'));
  for (const lazy of ['@aws-sdk/client-s3', 'ssh2', 'ssh2-sftp-client']) assert.ok(!packages.includes(lazy), `${lazy} is loaded at start`);
  for (const bundled of ['commander', 'smol-toml']) assert.ok(!packages.includes(bundled), `${bundled} is not in the bundle`);
  assert.ok(packages.includes('better-sqlite3'), `packages: ${packages.join(', ')}`);
});
