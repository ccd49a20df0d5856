/**
 * cairn against restic and borg, side by side on the same tree and disk,
 * encryption on for all (issue 8). Run it through `bench/peers`:
 *
 *   bench/peers [--shape full|small] [--repeat N] [--work DIR] [--tools cairn,restic,borg]
 *
 * For each repetition: a fresh archive and a copy of the tree per tool, then
 * step by step for every tool in turn: first snapshot, no-change snapshot,
 * mutation, incremental snapshot, full restore (verified with `diff -r`).
 * Wall, CPU, peak RSS (GNU time) and archive size per step; medians and the
 * cairn/best-peer ratio go to bench/results/peers-SHAPE-DATE.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTree, mutateTree, SHAPES, type TreeShape } from './peers-tree.js';

const STEPS = ['first', 'no-change', 'incremental', 'restore'] as const;
type Step = (typeof STEPS)[number];

interface Measure {
  wall: number;
  cpu: number;
  rssMiB: number;
  /** The repository: what a user stores (and would copy off-site). */
  archiveBytes: number;
  /** Client-side caches, kept apart: cairn's file cache, restic's cache directory, borg's base directory. */
  cacheBytes: number;
}

interface Tool {
  name: string;
  env: Record<string, string>;
  init(repo: string): string[];
  snapshot(repo: string, tree: string, n: number): string[];
  restore(repo: string, dest: string): { argv: string[]; cwd?: string };
}

const PASSPHRASE = 'bench-passphrase-not-secret';
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cairnBin = path.join(repoRoot, 'bin/cairn');

function tools(work: string): Tool[] {
  const cairnConfig = path.join(work, 'cairn-config.toml');
  return [
    {
      name: 'cairn',
      // The installed command (bin/cairn, which sets glibc's huge pages), with this Node.
      env: { CAIRN_PASSPHRASE: PASSPHRASE, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
      init: (repo) => [cairnBin, '--config', cairnConfig, 'init', '--archive', `backend-fs splitlog ${repo}/logs ${repo}/meta.sqlite`, '--file-cache', `${repo}-filecache.sqlite`],
      snapshot: (_repo, tree) => [cairnBin, '--config', cairnConfig, 'snapshot', 'bench', tree, '-q'],
      restore: (_repo, dest) => ({ argv: [cairnBin, '--config', cairnConfig, 'extract', 'bench', dest] }),
    },
    {
      name: 'restic',
      env: { RESTIC_PASSWORD: PASSPHRASE, RESTIC_CACHE_DIR: path.join(work, 'restic-cache') },
      init: (repo) => ['restic', '-r', repo, 'init', '-q'],
      snapshot: (repo, tree) => ['restic', '-r', repo, 'backup', '-q', tree],
      restore: (repo, dest) => ({ argv: ['restic', '-r', repo, 'restore', 'latest', '-q', '--target', dest] }),
    },
    {
      name: 'borg',
      env: { BORG_PASSPHRASE: PASSPHRASE, BORG_BASE_DIR: path.join(work, 'borg-base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' },
      init: (repo) => ['borg', 'init', '-e', 'repokey', repo],
      snapshot: (repo, tree, n) => ['borg', 'create', `${repo}::s${n}`, tree],
      restore: (repo, dest) => ({ argv: ['borg', 'extract', `${repo}::s3`], cwd: dest }),
    },
  ];
}

function dropCaches(): boolean {
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

function duBytes(target: string): number {
  if (!existsSync(target)) return 0;
  return Number(execFileSync('du', ['-sb', target], { encoding: 'utf8' }).split(/\s/)[0]);
}

function timed(argv: string[], env: Record<string, string>, cwd?: string): Omit<Measure, 'archiveBytes' | 'cacheBytes'> {
  const out = path.join(process.env.TMPDIR ?? '/tmp', `cairn-bench-time-${process.pid}`);
  const result = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, ...argv], {
    env: { ...process.env, ...env }, cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`${argv.join(' ')} failed (${result.status}):\n${result.stderr.slice(-2000)}`);
  }
  const [wall, user, sys, rssKiB] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number, number];
  rmSync(out, { force: true });
  return { wall, cpu: user + sys, rssMiB: rssKiB / 1024 };
}

function findRestored(dest: string): string {
  const stack = [dest];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    if (existsSync(path.join(dir, 'big', 'service.log')) && existsSync(path.join(dir, 'src'))) return dir;
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) stack.push(path.join(dir, entry.name));
  }
  throw new Error(`restored tree not found under ${dest}`);
}

/** One tool's fresh archive and its own copy of the tree, for one repetition. */
interface Run {
  tool: Tool;
  tree: string;
  repo: string;
  dest: string;
  cache: string;
  results: Record<Step, Measure>;
}

/** The repository is measured alone; each tool's client-side cache apart (restic's and borg's live outside their repositories). */
function prepare(tool: Tool, pristine: string, work: string): Run {
  const tree = path.join(work, `${tool.name}-tree`);
  const repo = path.join(work, `${tool.name}-repo`);
  const dest = path.join(work, `${tool.name}-restore`);
  const cache = tool.name === 'cairn' ? `${repo}-filecache.sqlite` : path.join(work, tool.name === 'restic' ? 'restic-cache' : 'borg-base');
  for (const p of [tree, repo, dest, cache, path.join(work, `${tool.name}-config.toml`)]) rmSync(p, { recursive: true, force: true });
  cpSync(pristine, tree, { recursive: true, preserveTimestamps: true });
  execFileSync(tool.init(repo)[0] as string, tool.init(repo).slice(1), { env: { ...process.env, ...tool.env }, stdio: 'ignore' });
  return { tool, tree, repo, dest, cache, results: {} as Record<Step, Measure> };
}

/**
 * One repetition, step by step: each step runs for every tool in turn (the
 * order rotated between repetitions), so a slow spell of a shared machine
 * falls on one step of every tool rather than on every step of one tool.
 * Restored trees are compared and removed only after all restores (a restore
 * right after a large `rm -rf` pays for the deleted inodes).
 */
function runRepetition(tools: Tool[], pristine: string, work: string, shape: TreeShape, drop: boolean): Run[] {
  const runs = tools.map((tool) => prepare(tool, pristine, work));
  const step = (run: Run, name: Step, argv: string[], cwd?: string): void => {
    if (drop) dropCaches();
    run.results[name] = { ...timed(argv, run.tool.env, cwd), archiveBytes: duBytes(run.repo), cacheBytes: duBytes(run.cache) };
  };
  for (const run of runs) step(run, 'first', run.tool.snapshot(run.repo, run.tree, 1));
  for (const run of runs) step(run, 'no-change', run.tool.snapshot(run.repo, run.tree, 2));
  for (const run of runs) mutateTree(run.tree, shape);
  for (const run of runs) step(run, 'incremental', run.tool.snapshot(run.repo, run.tree, 3));
  for (const run of runs) {
    mkdirSync(run.dest, { recursive: true });
    const restore = run.tool.restore(run.repo, run.dest);
    step(run, 'restore', restore.argv, restore.cwd);
  }
  for (const run of runs) {
    const diff = spawnSync('diff', ['-r', '--no-dereference', run.tree, findRestored(run.dest)], { encoding: 'utf8' });
    if (diff.status !== 0) throw new Error(`${run.tool.name}: restored tree differs:\n${diff.stdout.slice(0, 2000)}`);
  }
  for (const run of runs) rmSync(run.dest, { recursive: true, force: true });
  return runs;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function parseArgs(argv: string[]): { shape: string; repeat: number; work: string; tools: string[] } {
  const options = { shape: 'full', repeat: 3, work: path.join(repoRoot, 'bench', 'work'), tools: ['cairn', 'restic', 'borg'] };
  for (let i = 0; i < argv.length; i += 1) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--shape': options.shape = value as string; i += 1; break;
      case '--repeat': options.repeat = Number(value); i += 1; break;
      case '--work': options.work = path.resolve(value as string); i += 1; break;
      case '--tools': options.tools = (value as string).split(','); i += 1; break;
      case '--help': case '-h':
        console.log('usage: bench/peers [--shape full|small] [--repeat N] [--work DIR] [--tools cairn,restic,borg]');
        process.exit(0);
        break;
      default:
        console.error(`unknown option ${argv[i]}; try --help`);
        process.exit(2);
    }
  }
  if (!(options.shape in SHAPES) || !(options.repeat >= 1)) {
    console.error('--shape is full or small; --repeat is at least 1');
    process.exit(2);
  }
  return options;
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const shape = SHAPES[options.shape] as TreeShape;
  const work = options.work;
  mkdirSync(work, { recursive: true });
  const pristine = path.join(work, 'pristine');
  rmSync(path.join(work, 'tree'), { recursive: true, force: true }); // left by earlier versions of this bench
  const started = Date.now();
  console.error(`generating the ${options.shape} tree in ${pristine} ...`);
  generateTree(pristine, shape);
  const treeBytes = duBytes(pristine);
  const drop = dropCaches();
  const selected = tools(work).filter((t) => options.tools.includes(t.name));
  const runs = new Map<string, Array<Record<Step, Measure>>>();
  for (let rep = 1; rep <= options.repeat; rep += 1) {
    const shift = (rep - 1) % selected.length;
    const order = [...selected.slice(shift), ...selected.slice(0, shift)];
    console.error(`run ${rep}/${options.repeat}: ${order.map((t) => t.name).join(', ')}, step by step`);
    for (const { tool, results } of runRepetition(order, pristine, work, shape, drop)) {
      runs.set(tool.name, [...(runs.get(tool.name) ?? []), results]);
      console.error(`  ${tool.name}`);
      for (const s of STEPS) console.error(`    ${s.padEnd(12)} ${results[s].wall.toFixed(2)} s wall, ${results[s].cpu.toFixed(2)} s cpu, ${results[s].rssMiB.toFixed(0)} MiB rss`);
    }
  }
  const med = (tool: string, s: Step, field: keyof Measure): number => median((runs.get(tool) ?? []).map((r) => r[s][field]));
  const peers = selected.map((t) => t.name).filter((n) => n !== 'cairn');
  const lines: string[] = [];
  lines.push(`# cairn vs ${peers.join(' and ')}`, '');
  lines.push(`${new Date().toISOString()}, shape ${options.shape} (${(treeBytes / 1e6).toFixed(0)} MB, ${shape.smallFiles} small files), ${options.repeat} runs, medians; page cache ${drop ? 'dropped before each step' : 'NOT dropped (not root)'}; node ${process.version}, ${execFileSync('restic', ['version'], { encoding: 'utf8' }).trim()}, ${execFileSync('borg', ['--version'], { encoding: 'utf8' }).trim()}.`, '');
  lines.push(`| step | ${selected.map((t) => `${t.name} wall s`).join(' | ')} | ${selected.map((t) => `${t.name} cpu s`).join(' | ')} | ${selected.map((t) => `${t.name} RSS MiB`).join(' | ')} | ${selected.map((t) => `${t.name} archive MB`).join(' | ')} | cairn / best peer (wall) |`);
  lines.push(`| --- | ${selected.map(() => '---:').join(' | ')} | ${selected.map(() => '---:').join(' | ')} | ${selected.map(() => '---:').join(' | ')} | ${selected.map(() => '---:').join(' | ')} | ---: |`);
  for (const s of STEPS) {
    const best = Math.min(...peers.map((p) => med(p, s, 'wall')));
    const ratio = runs.has('cairn') && peers.length > 0 ? (med('cairn', s, 'wall') / best).toFixed(2) : '';
    lines.push(`| ${s} | ${selected.map((t) => med(t.name, s, 'wall').toFixed(2)).join(' | ')} | ${selected.map((t) => med(t.name, s, 'cpu').toFixed(2)).join(' | ')} | ${selected.map((t) => med(t.name, s, 'rssMiB').toFixed(0)).join(' | ')} | ${selected.map((t) => (med(t.name, s, 'archiveBytes') / 1e6).toFixed(1)).join(' | ')} | ${ratio} |`);
  }
  lines.push('', `Archive MB is the repository alone. Client-side caches after the incremental (not in it): ${selected.map((t) => `${t.name} ${(med(t.name, 'incremental', 'cacheBytes') / 1e6).toFixed(1)} MB`).join(', ')}.`);
  lines.push('', `Total bench time ${((Date.now() - started) / 60000).toFixed(1)} min.`);
  const report = lines.join('\n');
  console.log(report);
  const resultsDir = path.join(repoRoot, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `peers-${options.shape}-${new Date().toISOString().slice(0, 10)}.md`);
  writeFileSync(file, `${report}\n`);
  console.error(`written to ${path.relative(repoRoot, file)}`);
}

main();
