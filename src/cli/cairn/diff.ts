import type { Command } from 'commander';
import type { Archive } from '../../archive/archive.js';
import { readDirectory } from '../../archive/directory.js';
import { parseSpec, resolveEntry, resolveSnapshot } from '../../archive/snapshot-ref.js';
import { displayName, type Entry } from '../../archive/tree-entry.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { printJson, runAction } from './output.js';

export interface Change {
  /** + added, - removed, M contents changed, m metadata only, T type changed. */
  change: '+' | '-' | 'M' | 'm' | 'T';
  path: string;
}

function sameRef(a: Entry, b: Entry): boolean {
  const x = a.content ?? null;
  const y = b.content ?? null;
  return x === null || y === null ? x === y : x.key === y.key && x.level === y.level;
}

function sameMeta(a: Entry, b: Entry): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtime[0] === b.mtime[0] && a.mtime[1] === b.mtime[1] &&
    a.size === b.size && Buffer.compare(a.target ?? Buffer.alloc(0), b.target ?? Buffer.alloc(0)) === 0 && a.rdev === b.rdev;
}

/** Walks two trees together; identical subtrees (same directory key) are skipped without reading. */
async function compare(archive: Archive, a: Entry, b: Entry, path: string, out: Change[]): Promise<void> {
  if (a.type !== b.type) {
    out.push({ change: 'T', path });
    return;
  }
  if (a.type !== 'dir') {
    if (!sameRef(a, b)) out.push({ change: 'M', path });
    else if (!sameMeta(a, b)) out.push({ change: 'm', path });
    return;
  }
  if (!sameMeta(a, b) && path !== '/') out.push({ change: 'm', path: `${path}` });
  if (sameRef(a, b)) return;
  const left = a.content ? await readDirectory(archive, a.content) : [];
  const right = b.content ? await readDirectory(archive, b.content) : [];
  let i = 0;
  let j = 0;
  const prefix = path === '/' ? '/' : `${path}/`;
  while (i < left.length || j < right.length) {
    const l = left[i];
    const r = right[j];
    const order = l === undefined ? 1 : r === undefined ? -1 : Buffer.compare(l.name, r.name);
    if (order < 0) {
      out.push({ change: '-', path: prefix + displayName((l as Entry).name) });
      i += 1;
    } else if (order > 0) {
      out.push({ change: '+', path: prefix + displayName((r as Entry).name) });
      j += 1;
    } else {
      await compare(archive, l as Entry, r as Entry, prefix + displayName((l as Entry).name), out);
      i += 1;
      j += 1;
    }
  }
}

/** `cairn diff TAG@A TAG@B`: what changed from A to B. */
export async function diff(ctx: CommandContext, from: string, to: string): Promise<Change[]> {
  const a = parseSpec(from);
  const b = parseSpec(to);
  return withArchive(ctx, async (archive) => {
    const left = await resolveEntry(archive, (await resolveSnapshot(archive, a)).record, a.path, from);
    const right = await resolveEntry(archive, (await resolveSnapshot(archive, b)).record, b.path, to);
    const out: Change[] = [];
    await compare(archive, left, right, '/', out);
    return out;
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('diff')
    .description('what changed between two snapshots (+ added, - removed, M contents, m metadata, T type)')
    .argument('<from>', 'TAG[@SNAPSHOT][/PATH]')
    .argument('<to>', 'TAG[@SNAPSHOT][/PATH]')
    .option('--json', 'machine-readable output')
    .action(runAction(async (from: string, to: string, opts: { json?: boolean }) => {
      const changes = await diff(await loadContext(globals()), from, to);
      if (opts.json === true) return printJson(changes);
      for (const c of changes) process.stdout.write(`${c.change} ${c.path}\n`);
    }));
}
