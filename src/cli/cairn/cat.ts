import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { readContent } from '../../archive/content.js';
import { parseSpec, resolveEntry, resolveSnapshot } from '../../archive/snapshot-ref.js';
import { BackendError } from '../../backends/errors.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { runAction } from './output.js';
import { writeAll } from './write-all.js';

/** `cairn cat TAG[@SNAPSHOT]/PATH`: a file's contents to `out`. */
export async function catFile(ctx: CommandContext, spec: string, out: Writable): Promise<number> {
  const parsed = parseSpec(spec);
  return withArchive(ctx, async (archive) => {
    const { record } = await resolveSnapshot(archive, parsed);
    const entry = await resolveEntry(archive, record, parsed.path, spec);
    if (entry.type !== 'file' && entry.type !== 'hardlink') throw new BackendError('badRequest', `${spec} is a ${entry.type}, not a file`);
    let size = 0;
    for await (const block of readContent(archive, entry.content ?? null)) {
      await writeAll(out, block);
      size += block.length;
    }
    return size;
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('cat')
    .description('write a file of a snapshot to standard output')
    .argument('<tag[@snapshot]/path>')
    .action(runAction(async (spec: string) => {
      await catFile(await loadContext(globals()), spec, process.stdout);
    }));
}
