import type { Command } from 'commander';
import { Extractor, type ExtractStats } from '../../archive/extract.js';
import { parseSpec, resolveEntry, resolveSnapshot } from '../../archive/snapshot-ref.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { formatBytes, Progress, runAction } from './output.js';

/** `cairn extract TAG[@SNAPSHOT][/PATH] DEST`: restores into a new or empty DEST. */
export async function extract(ctx: CommandContext, spec: string, dest: string, options: { quiet?: boolean; onWarning?: (path: string, message: string) => void } = {}): Promise<ExtractStats> {
  const parsed = parseSpec(spec);
  return withArchive(ctx, async (archive) => {
    const { record } = await resolveSnapshot(archive, parsed);
    const entry = await resolveEntry(archive, record, parsed.path, spec);
    const extractor = new Extractor(archive, {
      from: parsed.path,
      onWarning: options.onWarning ?? ((path, message) => {
        if (options.quiet !== true) process.stderr.write(`warning: ${path}: ${message}\n`);
      }),
    });
    const started = Date.now();
    const progress = new Progress(() => {
      const secs = Math.max(0.001, (Date.now() - started) / 1000);
      return `${extractor.stats.files} files, ${formatBytes(extractor.stats.bytes)} written (${formatBytes(extractor.stats.bytes / secs)}/s)`;
    }, options.quiet === true);
    progress.start();
    try {
      return await extractor.extract(entry, dest);
    } finally {
      progress.stop();
    }
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('extract')
    .description('restore a snapshot (or a path in it) into DEST, which must be new or empty')
    .argument('<tag[@snapshot][/path]>')
    .argument('<dest>')
    .option('-q, --quiet', 'no progress or summary')
    .action(runAction(async (spec: string, dest: string, opts: { quiet?: boolean }) => {
      const stats = await extract(await loadContext(globals()), spec, dest, opts);
      if (opts.quiet !== true) process.stderr.write(`${stats.files} files, ${stats.dirs} directories, ${formatBytes(stats.bytes)} restored${stats.warnings > 0 ? `; ${stats.warnings} warnings` : ''}\n`);
    }));
}
