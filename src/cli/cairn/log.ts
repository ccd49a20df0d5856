import type { Command } from 'commander';
import { chain } from '../../archive/snapshot-ref.js';
import type { SnapshotRecord } from '../../archive/snapshot-record.js';
import { checkCairnTagName } from '../../archive/tags.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { formatBytes, formatTime, printJson, runAction } from './output.js';

/** `cairn log TAG`: the chain of snapshots, newest first. */
export async function logCommand(ctx: CommandContext, tag: string): Promise<Array<{ id: string; record: SnapshotRecord }>> {
  checkCairnTagName(tag);
  return withArchive(ctx, async (archive) => {
    const head = (await archive.requireTag(tag)).head;
    const out: Array<{ id: string; record: SnapshotRecord }> = [];
    for await (const item of chain(archive, head)) out.push(item);
    return out;
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('log')
    .description('the snapshots of TAG, newest first, with statistics')
    .argument('<tag>')
    .option('--json', 'machine-readable output')
    .action(runAction(async (tag: string, opts: { json?: boolean }) => {
      const items = await logCommand(await loadContext(globals()), tag);
      if (opts.json === true) {
        return printJson(items.map(({ id, record }) => ({
          id, kind: record.kind, time: record.time, host: record.host, user: record.user, paths: record.paths, comment: record.comment,
          previous: record.previous, root: record.root, name: record.name, size: record.size, stats: record.stats, skipped: record.skippedLog,
        })));
      }
      for (const { id, record: r } of items) {
        const s = r.stats;
        process.stdout.write(`snapshot ${id}\n  ${formatTime(r.time)} ${r.user}@${r.host} ${r.kind === 'stream' ? `stream ${r.name ?? ''}` : r.paths.join(' ')}\n`);
        if (r.comment !== '') process.stdout.write(`  ${r.comment}\n`);
        process.stdout.write(`  ${s.files} files, ${formatBytes(s.bytesRead)} read; ${s.blocksUploaded} blocks uploaded (${formatBytes(s.bytesUploaded)}), ` +
          `${s.blocksReused} reused; ${s.skipped} skipped; ${(s.durationMs / 1000).toFixed(1)} s\n`);
        for (const [p, why] of r.skippedLog.slice(0, 20)) process.stdout.write(`  skipped ${p}: ${why}\n`);
      }
    }));
}
