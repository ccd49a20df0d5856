import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { FileCache } from '../../archive/file-cache.js';
import { matchRegex, regexRule, type RegexRule } from '../../archive/regex-rules.js';
import { parseRule, type Rule } from '../../archive/rules.js';
import { ListingThread } from '../../archive/listing-thread.js';
import { listingThreadWanted, startSnapshot, type SnapshotOptions, type SnapshotResult, type StartedSnapshot } from '../../archive/snapshot.js';
import type { Archive } from '../../archive/archive.js';
import { readSnapshotRecord } from '../../archive/snapshot-record.js';
import { splitIdentifier } from '../../protocol/identifier.js';
import { loadContext, withArchive, type CommandContext, type GlobalOptions } from './context.js';
import { keepMemoryDown } from './memory-keeper.js';
import { tuneV8ForSnapshots } from './v8-tuning.js';
import { formatBytes, Progress, runAction } from './output.js';

export interface Filter {
  include?: string;
  exclude?: string;
}

export interface SnapshotCommandOptions {
  comment?: string;
  /** Command-line filters, in the order given, after the config file's. */
  filters?: Filter[];
  quiet?: boolean;
  verbose?: boolean;
  /** Seal on this many worker threads (tests use 0 or 1). */
  workers?: number;
}

/** Paths a snapshot must never include: the local files of the archive and the file cache. */
export function ownFiles(ctx: CommandContext): string[] {
  const out: string[] = [];
  if (ctx.config.fileCache !== '') out.push(ctx.config.fileCache, `${ctx.config.fileCache}-wal`, `${ctx.config.fileCache}-shm`);
  try {
    const argv = splitIdentifier(ctx.config.archive);
    if (argv[0] === 'backend-fs') out.push(...argv.slice(2).filter((a) => a.startsWith('/')).flatMap((a) => [a, `${a}-wal`, `${a}-shm`]));
  } catch {
    // not ours to judge
  }
  return out;
}

/** The config's rules, parsed (a rule's `under` binds it to that directory). */
export function configRules(ctx: CommandContext): Rule[] {
  return ctx.config.rules.map((r) => parseRule(`${r.include !== undefined ? 'include' : 'exclude'} ${r.include ?? r.exclude}`, r.under ?? null));
}

/** The size of the tag's previous snapshot (read plus unchanged), to estimate the time left; 0 when unknown. */
async function previousTotal(archive: Archive, tag: string): Promise<number> {
  try {
    const head = (await archive.getTag(tag))?.head ?? null;
    if (head === null) return 0;
    const { stats } = await readSnapshotRecord(archive, head);
    return stats.bytesRead + (stats.bytesCached ?? 0);
  } catch {
    return 0;
  }
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function compileFilters(filters: Filter[]): RegexRule[] {
  return filters.map((f) => (f.include !== undefined ? regexRule(true, f.include) : regexRule(false, f.exclude as string)));
}

/** `cairn snapshot TAG PATH...`: the plain function (tests call it directly). */
export async function snapshotCommand(ctx: CommandContext, tag: string, paths: string[], options: SnapshotCommandOptions = {}): Promise<SnapshotResult> {
  const rules = compileFilters([...ctx.config.filters, ...(options.filters ?? [])]);
  const stopKeeping = keepMemoryDown();
  try {
    return await snapshotPaths(ctx, tag, paths, options, rules);
  } finally {
    stopKeeping();
  }
}

async function snapshotPaths(ctx: CommandContext, tag: string, paths: string[], options: SnapshotCommandOptions, rules: RegexRule[]): Promise<SnapshotResult> {
  let cache: FileCache | undefined;
  let started: StartedSnapshot | undefined;
  let progress: Progress | null = null;
  let expected = 0;
  const snapshotOptions = (): SnapshotOptions => ({
    tag,
    comment: options.comment ?? '',
    include: rules.length === 0 ? undefined : (rel) => matchRegex(rules, rel),
    includeFingerprint: JSON.stringify(rules.map((r) => [r.include, r.pattern.source, r.pattern.flags])),
    rules: configRules(ctx),
    excludeAbsolute: ownFiles(ctx),
    ...(listings !== undefined ? { listings } : {}),
    ...(cache !== undefined ? { cache } : {}),
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
    compression: ctx.config.compression,
    compressionLevel: ctx.config.compressionLevel,
    onSkip: (path, reason) => {
      if (options.quiet !== true) (progress ?? { log: (t: string) => process.stderr.write(`${t}\n`) }).log(`skipped ${path}: ${reason}`);
    },
    onWarning: (message) => {
      if (options.quiet !== true) (progress ?? { log: (t: string) => process.stderr.write(`${t}\n`) }).log(`warning: ${message}`);
    },
    onStart: (tree, writes) => {
      const begun = Date.now();
      progress = new Progress(() => {
        const secs = Math.max(0.001, (Date.now() - begun) / 1000);
        const rate = formatBytes(tree.bytesRead / secs);
        const current = options.verbose === true ? ` ${tree.current}` : '';
        const done = tree.bytesRead + tree.bytesCached;
        const eta = expected > done && tree.bytesRead > 0 ? `, ETA ${formatDuration((expected - done) / (tree.bytesRead / secs))}` : '';
        return `${tree.files} files, ${formatBytes(tree.bytesRead)} read (${rate}/s), ${formatBytes(tree.bytesCached)} unchanged, ` +
          `${writes.blocksUploaded} blocks uploaded (${formatBytes(writes.bytesUploaded)}), ${writes.blocksReused} reused${eta}${current}`;
      }, options.quiet === true);
      progress.start();
    },
  });
  // First of all, so that it lists while the archive is opened, the file cache read and the passphrase stretched
  // (and, when the cache holds no rows, so that every file will be read, reads small files ahead). A cache
  // file that does not exist yet holds none: it is made only once the archive has opened, as before.
  let listings: ListingThread | undefined;
  try {
    if (ctx.config.fileCache !== '' && existsSync(ctx.config.fileCache)) cache = FileCache.open(ctx.config.fileCache);
    if (listingThreadWanted({})) listings = new ListingThread(paths, ownFiles(ctx), !(cache?.hasRows() ?? false));
  } catch (err) {
    cache?.close();
    throw err;
  }
  return withArchive(ctx, async (archive: Archive) => {
    expected = await previousTotal(archive, tag);
    try {
      return await (started ?? startSnapshot(archive.backend, paths, snapshotOptions())).finish(archive);
    } finally {
      (progress as Progress | null)?.stop();
    }
  }, (backend) => {
    // Work that needs no key, while the passphrase is stretched: the file cache is read, and on a warm
    // tree the snapshot's walk goes as far as it can without the key (on a cold one the listing thread
    // goes on alone until the key is there).
    if (ctx.config.fileCache !== '') {
      cache ??= FileCache.open(ctx.config.fileCache);
      cache.preload(backend);
    }
    started = startSnapshot(backend, paths, snapshotOptions(), { whenWarm: true });
  }).finally(() => {
    started?.abandon();
    listings?.close();
    cache?.close();
  });
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const filters: Filter[] = [];
  program.command('snapshot')
    .description('snapshot PATHs onto TAG (uploads only blocks the archive lacks)')
    .argument('<tag>', 'the tag to move to the new snapshot')
    .argument('<path...>', 'files and directories to snapshot')
    .option('--comment <text>', 'a comment stored with the snapshot')
    .option('--exclude <regex>', 'leave out paths matching (relative, leading /, directories end in /); repeatable, ordered with --include', (v: string) => {
      filters.push({ exclude: v });
      return v;
    })
    .option('--include <regex>', 'keep paths matching, even under a later --exclude; first match wins', (v: string) => {
      filters.push({ include: v });
      return v;
    })
    .option('-q, --quiet', 'print only the result')
    .option('-v, --verbose', 'show the file being read')
    .action(runAction(async (tag: string, paths: string[], opts: { comment?: string; quiet?: boolean; verbose?: boolean }) => {
      tuneV8ForSnapshots();
      const ctx = await loadContext(globals());
      const result = await snapshotCommand(ctx, tag, paths, { ...opts, filters });
      const s = result.record.stats;
      if (opts.quiet !== true) {
        process.stderr.write(`${s.files} files, ${s.dirs} directories, ${formatBytes(s.bytesRead)} read; ${s.blocksUploaded} blocks uploaded (${formatBytes(s.bytesUploaded)}), ` +
          `${s.blocksReused} reused; ${s.skipped} skipped; ${(s.durationMs / 1000).toFixed(1)} s\n`);
      }
      process.stdout.write(`snapshot ${result.id}\nroot ${result.root === null ? '-' : `${result.root.key} (level ${result.root.level})`}\n`);
    }));
}
