import type { Command } from 'commander';
import { BackendError } from '../../backends/errors.js';
import { checkCairnTagName } from '../../archive/tags.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { runAction } from './output.js';

/** `cairn fork TAG NEWTAG`: a new tag pointing at TAG's newest snapshot (its chain is shared). */
export async function fork(ctx: CommandContext, from: string, to: string): Promise<string | null> {
  checkCairnTagName(from);
  checkCairnTagName(to);
  return withArchive(ctx, async (archive) => archive.withTagLock(to, async () => {
    const source = await archive.requireTag(from);
    if ((await archive.getTag(to)) !== null) throw new BackendError('badRequest', `tag ${JSON.stringify(to)} already exists`);
    await archive.setTag(to, source.head);
    await archive.backend.flush();
    return source.head;
  }));
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('fork')
    .description('create NEWTAG at the newest snapshot of TAG')
    .argument('<tag>')
    .argument('<newtag>')
    .action(runAction(async (from: string, to: string) => {
      const head = await fork(await loadContext(globals()), from, to);
      process.stdout.write(`${to} -> ${head ?? '-'}\n`);
    }));
}
