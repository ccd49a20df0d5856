import { Archive } from '../../archive/archive.js';
import type { KdfParams } from '../../archive/keys.js';
import type { Backend } from '../../backends/backend.js';
import { configPath, loadConfig, type CairnConfig } from './config.js';
import { passphraseSource, type PassphraseOptions } from './passphrase.js';

/** The options every cairn command takes (before the subcommand). */
export interface GlobalOptions extends PassphraseOptions {
  config?: string;
  /** Overrides the config file's archive identifier. */
  archive?: string;
}

/** What a command's plain function needs: the config and a way to unlock the archive. */
export interface CommandContext {
  configFile: string;
  config: CairnConfig;
  passphrase: PassphraseOptions;
  /** scrypt parameters for new keys (tests pass cheap ones). */
  kdf?: KdfParams;
}

export async function loadContext(options: GlobalOptions): Promise<CommandContext> {
  const configFile = configPath(options.config);
  const config = await loadConfig(configFile);
  if (options.archive !== undefined) config.archive = options.archive;
  return { configFile, config, passphrase: options, ...kdfFromEnv() };
}

/** CAIRN_TEST_SCRYPT_N lowers scrypt's cost for tests; never set it for real archives. */
export function kdfFromEnv(): { kdf?: KdfParams } {
  const n = Number(process.env.CAIRN_TEST_SCRYPT_N ?? '');
  return Number.isInteger(n) && n >= 2 ? { kdf: { N: n, r: 8, p: 1 } } : {};
}

/**
 * Opens and unlocks the configured archive; the caller closes it.
 * `whileUnlocking` starts work that needs the backend but not the key, to
 * run while the passphrase is stretched. It is called once scrypt has
 * started (not at all when the unlock fails before): work done before
 * held scrypt back, 100 ms of a no-change snapshot of the bench tree.
 */
export async function unlockArchive(ctx: CommandContext, whileUnlocking?: (backend: Backend) => void): Promise<Archive> {
  const backend = await Archive.connect(ctx.config.archive);
  try {
    return await Archive.unlock(backend, passphraseSource(ctx.passphrase), {
      compression: ctx.config.compression,
      compressionLevel: ctx.config.compressionLevel,
      ...(whileUnlocking !== undefined ? { whileStretching: () => whileUnlocking(backend) } : {}),
    });
  } catch (err) {
    await backend.close().catch(() => undefined);
    throw err;
  }
}

/** Runs `fn` on the unlocked archive and closes it, whatever happens. */
export async function withArchive<T>(ctx: CommandContext, fn: (archive: Archive) => Promise<T>, whileUnlocking?: (backend: Backend) => void): Promise<T> {
  const archive = await unlockArchive(ctx, whileUnlocking);
  try {
    return await fn(archive);
  } finally {
    await archive.close().catch(() => undefined);
  }
}
