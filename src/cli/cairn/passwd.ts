import type { Command } from 'commander';
import { Archive } from '../../archive/archive.js';
import { BackendError } from '../../backends/errors.js';
import { loadContext, type CommandContext, type GlobalOptions } from './context.js';
import { passphraseSource } from './passphrase.js';
import { runAction } from './output.js';

/** `cairn passwd`: re-wraps the master key under a new passphrase; blocks and tags are untouched. */
export async function passwd(ctx: CommandContext): Promise<void> {
  if (!process.stdin.isTTY && process.env.CAIRN_NEW_PASSPHRASE === undefined) {
    throw new BackendError('badRequest', 'no new passphrase: set CAIRN_NEW_PASSPHRASE (no terminal to ask on)');
  }
  const backend = await Archive.connect(ctx.config.archive);
  try {
    await Archive.changePassphrase(backend, passphraseSource(ctx.passphrase), ctx.kdf ? { kdf: ctx.kdf } : {});
  } finally {
    await backend.close().catch(() => undefined);
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program.command('passwd')
    .description('change the passphrase (re-wraps the master key only)')
    .action(runAction(async () => {
      await passwd(await loadContext(globals()));
      process.stdout.write('passphrase changed\n');
    }));
}
