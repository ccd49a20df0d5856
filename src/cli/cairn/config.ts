import { promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { parse, stringify } from 'smol-toml';
import { BackendError } from '../../backends/errors.js';
import { BACKENDS } from '../../backends/registry.js';
import { joinIdentifier } from '../../protocol/identifier.js';
import { parseRule } from '../../archive/rules.js';

/**
 * The config file (issue 7): TOML, mode 0600, at --config, CAIRN_CONFIG or
 * ~/.config/cairn/config.toml.
 *
 *     archive = "backend-fs splitlog /home/me/.local/share/cairn/logs /home/me/.local/share/cairn/meta.sqlite"
 *     compression = "zstd"          # or "none"
 *     compression_level = 3
 *     file_cache = "/home/me/.cache/cairn/files.sqlite"   # "" for none
 *     filters = [ { exclude = "/\\.cache/$" }, { include = "\\.keep$" } ]
 *     rules = [ { exclude = "name *.o or size-above 1G" }, { include = "name keep.o", under = "/home/me/src" } ]
 */
export interface CairnConfig {
  archive: string;
  compression: 'zstd' | 'none';
  compressionLevel: number;
  fileCache: string;
  filters: Array<{ include?: string; exclude?: string }>;
  /** Rules in the rule language (src/archive/rules.ts), optionally bound to a directory. */
  rules: Array<{ include?: string; exclude?: string; under?: string }>;
}

export function configPath(explicit?: string): string {
  return explicit ?? process.env.CAIRN_CONFIG ?? path.join(homedir(), '.config', 'cairn', 'config.toml');
}

export function dataDir(): string {
  return path.join(process.env.XDG_DATA_HOME ?? path.join(homedir(), '.local', 'share'), 'cairn');
}

/** The embedded default: a splitlog archive under ~/.local/share/cairn, or an fs one where splitlog is not built in. */
export function defaultArchive(): string {
  const dir = dataDir();
  if (BACKENDS.some((b) => b.command === 'backend-fs' && b.name === 'splitlog')) {
    return joinIdentifier(['backend-fs', 'splitlog', path.join(dir, 'logs'), path.join(dir, 'meta.sqlite')]);
  }
  return joinIdentifier(['backend-fs', 'fs', path.join(dir, 'archive')]);
}

export function defaultFileCache(): string {
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'cairn', 'files.sqlite');
}

export function defaultConfig(archive?: string, fileCache?: string): CairnConfig {
  return { archive: archive ?? defaultArchive(), compression: 'zstd', compressionLevel: 3, fileCache: fileCache ?? defaultFileCache(), filters: [], rules: [] };
}

export async function loadConfig(file: string): Promise<CairnConfig> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BackendError('badRequest', `no config file at ${file}: run \`cairn init\` first (or give --config)`);
    }
    throw new BackendError('badRequest', `cannot read ${file}: ${(err as Error).message}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new BackendError('badRequest', `${file} is not valid TOML: ${(err as Error).message}`);
  }
  const config = defaultConfig();
  if (typeof raw.archive !== 'string' || raw.archive.trim() === '') throw new BackendError('badRequest', `${file}: "archive" must name an archive identifier`);
  config.archive = raw.archive;
  if (raw.compression !== undefined) {
    if (raw.compression !== 'zstd' && raw.compression !== 'none') throw new BackendError('badRequest', `${file}: compression must be "zstd" or "none"`);
    config.compression = raw.compression;
  }
  if (raw.compression_level !== undefined) {
    if (typeof raw.compression_level !== 'number' || raw.compression_level < 1 || raw.compression_level > 19) throw new BackendError('badRequest', `${file}: compression_level must be 1 to 19`);
    config.compressionLevel = raw.compression_level;
  }
  if (raw.file_cache !== undefined) {
    if (typeof raw.file_cache !== 'string') throw new BackendError('badRequest', `${file}: file_cache must be a path or ""`);
    config.fileCache = raw.file_cache;
  }
  if (raw.filters !== undefined) {
    if (!Array.isArray(raw.filters)) throw new BackendError('badRequest', `${file}: filters must be a list of { include = "regex" } or { exclude = "regex" }`);
    for (const item of raw.filters) {
      const f = item as Record<string, unknown>;
      if (typeof f.include === 'string' && f.exclude === undefined) config.filters.push({ include: f.include });
      else if (typeof f.exclude === 'string' && f.include === undefined) config.filters.push({ exclude: f.exclude });
      else throw new BackendError('badRequest', `${file}: each filter is { include = "regex" } or { exclude = "regex" }`);
    }
  }
  if (raw.rules !== undefined) {
    const bad = `${file}: rules must be a list of { include = "EXPR" } or { exclude = "EXPR" }, each with an optional under = "/dir"`;
    if (!Array.isArray(raw.rules)) throw new BackendError('badRequest', bad);
    for (const item of raw.rules) {
      const r = item as Record<string, unknown>;
      const under = r.under;
      if (under !== undefined && (typeof under !== 'string' || !under.startsWith('/'))) throw new BackendError('badRequest', `${bad} (under is an absolute path)`);
      const rule: { include?: string; exclude?: string; under?: string } = typeof under === 'string' ? { under: under.replace(/\/+$/, '') } : {};
      if (typeof r.include === 'string' && r.exclude === undefined) rule.include = r.include;
      else if (typeof r.exclude === 'string' && r.include === undefined) rule.exclude = r.exclude;
      else throw new BackendError('badRequest', bad);
      parseRule(`${rule.include !== undefined ? 'include' : 'exclude'} ${rule.include ?? rule.exclude}`, null);
      config.rules.push(rule);
    }
  }
  return config;
}

/** Writes the config file, mode 0600 (its directory 0700). */
export async function saveConfig(file: string, config: CairnConfig): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const body: Record<string, unknown> = {
    archive: config.archive,
    compression: config.compression,
    compression_level: config.compressionLevel,
    file_cache: config.fileCache,
  };
  if (config.filters.length > 0) body.filters = config.filters;
  if (config.rules.length > 0) body.rules = config.rules;
  const text = `# cairn configuration (see README, "cairn commands")\n${stringify(body)}\n`;
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, text, { mode: 0o600 });
  await fsp.chmod(tmp, 0o600);
  await fsp.rename(tmp, file);
}
