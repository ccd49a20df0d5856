import type { Command } from 'commander';
import { readSnapshotRecord } from '../../archive/snapshot-record.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { formatTime, printJson, runAction } from './output.js';

export interface TagInfo {
  name: string;
  head: string | null;
  time: number | null;
  kind: string | null;
}

/** `cairn tags`: every user tag with its newest snapshot. */
export async function listTags(ctx: CommandContext): Promise<TagInfo[]> {
  return withArchive(ctx, async (archive) => {
    const tags = await archive.listTags();
    return Promise.all(tags.map(async (t) => {
      if (t.head === null) return { name: t.name, head: null, time: null, kind: null };
      const record = await readSnapshotRecord(archive, t.head);
      return { name: t.name, head: t.head, time: record.time, kind: record.kind };
    }));
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('tags')
    .description('list the tags')
    .option('--json', 'machine-readable output')
    .action(runAction(async (opts: { json?: boolean }) => {
      const tags = await listTags(await loadContext(globals()));
      if (opts.json === true) return printJson(tags);
      for (const t of tags) {
        process.stdout.write(`${t.name}\t${t.head === null ? '-' : t.head.slice(0, 12)}\t${t.time === null ? '' : formatTime(t.time)}\t${t.kind ?? ''}\n`);
      }
    }));
}
