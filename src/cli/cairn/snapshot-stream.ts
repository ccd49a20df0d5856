import type { Command } from 'commander';
import { snapshotStream, type SnapshotResult } from '../../archive/snapshot.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { keepMemoryDown } from './memory-keeper.js';
import { tuneV8ForSnapshots } from './v8-tuning.js';
import { formatBytes, Progress, runAction } from './output.js';

/** `cairn snapshot-stream TAG NAME < input`: a byte stream (zfs send, tar …) as one snapshot. */
export async function snapshotStreamCommand(ctx: CommandContext, tag: string, name: string, input: AsyncIterable<Buffer>, options: { comment?: string; quiet?: boolean } = {}): Promise<SnapshotResult> {
  return withArchive(ctx, async (archive) => {
    let progress: Progress | null = null;
    const stopKeeping = keepMemoryDown();
    try {
      return await snapshotStream(archive, input, name, {
        tag,
        comment: options.comment ?? '',
        compression: ctx.config.compression,
        compressionLevel: ctx.config.compressionLevel,
        onStart: (p, writes) => {
          progress = new Progress(() => `${formatBytes(p.bytesRead)} read, ${writes.blocksUploaded} blocks uploaded, ${writes.blocksReused} reused`, options.quiet === true);
          progress.start();
        },
      });
    } finally {
      stopKeeping();
      (progress as Progress | null)?.stop();
    }
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('snapshot-stream')
    .description('snapshot standard input (e.g. zfs send, tar) onto TAG under NAME')
    .argument('<tag>')
    .argument('<name>', 'a name for the stream')
    .option('--comment <text>', 'a comment stored with the snapshot')
    .option('-q, --quiet', 'print only the result')
    .action(runAction(async (tag: string, name: string, opts: { comment?: string; quiet?: boolean }) => {
      tuneV8ForSnapshots();
      const ctx = await loadContext(globals());
      const result = await snapshotStreamCommand(ctx, tag, name, process.stdin, opts);
      process.stdout.write(`snapshot ${result.id}\nroot ${result.root === null ? '-' : `${result.root.key} (level ${result.root.level})`}\n`);
    }));
}
