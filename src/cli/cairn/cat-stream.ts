import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { readContent } from '../../archive/content.js';
import { parseSpec, resolveSnapshot } from '../../archive/snapshot-ref.js';
import { BackendError } from '../../backends/errors.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { runAction } from './output.js';
import { writeAll } from './write-all.js';

/** `cairn cat-stream TAG[@SNAPSHOT] > output`: writes a stream snapshot back out. */
export async function catStream(ctx: CommandContext, spec: string, out: Writable): Promise<number> {
  const parsed = parseSpec(spec);
  return withArchive(ctx, async (archive) => {
    const { record } = await resolveSnapshot(archive, parsed);
    if (record.kind !== 'stream') throw new BackendError('badRequest', `${spec} is a tree snapshot, not a stream: use ls, cat or extract`);
    let size = 0;
    for await (const block of readContent(archive, record.root)) {
      await writeAll(out, block);
      size += block.length;
    }
    if (record.size !== undefined && size !== record.size) throw new BackendError('corrupt', `${spec}: the archive holds ${size} bytes, the record says ${record.size}`);
    return size;
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('cat-stream')
    .description('write a stream snapshot to standard output')
    .argument('<tag[@snapshot]>')
    .action(runAction(async (spec: string) => {
      await catStream(await loadContext(globals()), spec, process.stdout);
    }));
}
