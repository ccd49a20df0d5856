import type { Command } from 'commander';
import { readDirectory } from '../../archive/directory.js';
import { parseSpec, resolveEntry, resolveSnapshot } from '../../archive/snapshot-ref.js';
import { displayName, type Entry } from '../../archive/tree-entry.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { formatTime, printJson, runAction } from './output.js';

/** `cairn ls TAG[@SNAPSHOT][/PATH]`: a directory's entries, or the entry itself. */
export async function ls(ctx: CommandContext, spec: string): Promise<Entry[]> {
  const parsed = parseSpec(spec);
  return withArchive(ctx, async (archive) => {
    const { record } = await resolveSnapshot(archive, parsed);
    const entry = await resolveEntry(archive, record, parsed.path, spec);
    if (entry.type === 'dir' && entry.content) return readDirectory(archive, entry.content);
    return [entry];
  });
}

const TYPE_CHAR: Record<Entry['type'], string> = { file: '-', dir: 'd', symlink: 'l', hardlink: 'h', fifo: 'p', char: 'c', block: 'b' };

export function modeString(entry: Entry): string {
  const bits = 'rwxrwxrwx';
  let out = TYPE_CHAR[entry.type];
  for (let i = 0; i < 9; i += 1) out += (entry.mode & (1 << (8 - i))) !== 0 ? bits[i] : '-';
  return out;
}

export function entryJson(e: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: displayName(e.name), nameHex: e.name.toString('hex'), type: e.type, mode: e.mode, uid: e.uid, gid: e.gid,
    user: e.user ?? null, group: e.group ?? null, size: e.size, mtime: `${e.mtime[0]}.${String(e.mtime[1]).padStart(9, '0')}`,
  };
  if (e.target !== undefined) out.target = displayName(e.target);
  if (e.link !== undefined) out.link = e.link.map(displayName).join('/');
  if (e.rdev !== undefined) out.rdev = e.rdev;
  return out;
}

export function longLine(e: Entry): string {
  const owner = `${e.user ?? e.uid}`.padEnd(8);
  const group = `${e.group ?? e.gid}`.padEnd(8);
  const suffix = e.type === 'symlink' ? ` -> ${displayName(e.target ?? Buffer.alloc(0))}` : e.type === 'hardlink' ? ` => /${(e.link ?? []).map(displayName).join('/')}` : '';
  return `${modeString(e)} ${owner} ${group} ${String(e.size).padStart(12)} ${formatTime(e.mtime[0] * 1000)} ${displayName(e.name)}${e.type === 'dir' ? '/' : ''}${suffix}`;
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('ls')
    .description('list a directory of a snapshot')
    .argument('<tag[@snapshot][/path]>')
    .option('-l, --long', 'mode, owner, size and time')
    .option('--json', 'machine-readable output')
    .action(runAction(async (spec: string, opts: { long?: boolean; json?: boolean }) => {
      const entries = await ls(await loadContext(globals()), spec);
      if (opts.json === true) return printJson(entries.map(entryJson));
      for (const e of entries) process.stdout.write(`${opts.long === true ? longLine(e) : `${displayName(e.name)}${e.type === 'dir' ? '/' : ''}`}\n`);
    }));
}
