import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { Archive } from '../../archive/archive.js';
import { BackendError } from '../../backends/errors.js';
import { redactIdentifier } from '../../protocol/identifier.js';
import { configPath, defaultConfig, saveConfig } from './config.js';
import { kdfFromEnv, type GlobalOptions } from './context.js';
import { passphraseSource } from './passphrase.js';
import { runAction } from './output.js';

export interface InitResult {
  configFile: string;
  archive: string;
  /** False when the archive was already initialised and the passphrase unlocked it. */
  created: boolean;
}

/**
 * `cairn init [--archive ID] [--file-cache PATH]`: writes the config file and
 * initialises the archive (a new master key under the passphrase). An
 * archive that is already initialised is joined: the passphrase must unlock it.
 */
export async function init(options: GlobalOptions & { fileCache?: string; force?: boolean }): Promise<InitResult> {
  const file = configPath(options.config);
  if (existsSync(file) && options.force !== true) {
    throw new BackendError('badRequest', `${file} already exists: give --config for another file, or --force to replace it`);
  }
  const config = defaultConfig(options.archive, options.fileCache);
  const backend = await Archive.connect(config.archive);
  let created = false;
  try {
    const source = passphraseSource(options);
    if (await Archive.checkFormat(backend)) {
      await Archive.unlock(backend, source);
    } else {
      if ((await backend.listTags()).length > 0) {
        throw new BackendError('badRequest', `${redactIdentifier(config.archive)} holds tags but no cairn format record: not initialising over it`);
      }
      await Archive.initialise(backend, source, kdfFromEnv());
      created = true;
    }
  } finally {
    await backend.close().catch(() => undefined);
  }
  await saveConfig(file, config);
  return { configFile: file, archive: redactIdentifier(config.archive), created };
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('init')
    .description('create the config file and initialise the archive (default: a local archive under ~/.local/share/cairn)')
    .option('--file-cache <path>', 'where the file cache lives ("" for none)')
    .option('--force', 'replace an existing config file')
    .action(runAction(async (opts: { fileCache?: string; force?: boolean }) => {
      const result = await init({ ...globals(), ...opts });
      process.stdout.write(`${result.created ? 'initialised' : 'joined existing'} archive ${result.archive}\nconfig written to ${result.configFile}\n`);
    }));
}
