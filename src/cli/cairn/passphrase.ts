import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { BackendError } from '../../backends/errors.js';
import type { PassphraseSource } from '../../archive/archive.js';

export interface PassphraseOptions {
  passphraseCommand?: string;
  passphraseFile?: string;
}

/**
 * Where the passphrase comes from, in order: --passphrase-command (run, like
 * restic's, without a shell: split on spaces), --passphrase-file, the
 * CAIRN_PASSPHRASE variable, else a prompt on the terminal. A new passphrase
 * (init, passwd) comes from CAIRN_NEW_PASSPHRASE or is asked twice.
 */
export function passphraseSource(options: PassphraseOptions): PassphraseSource {
  return async (purpose) => {
    if (purpose === 'new' && process.env.CAIRN_NEW_PASSPHRASE !== undefined) return nonEmpty(process.env.CAIRN_NEW_PASSPHRASE, 'CAIRN_NEW_PASSPHRASE');
    if (purpose === 'unlock' || !process.stdin.isTTY) {
      if (options.passphraseCommand !== undefined) return nonEmpty(await runCommand(options.passphraseCommand), '--passphrase-command');
      if (options.passphraseFile !== undefined) return nonEmpty(await readFirstLine(options.passphraseFile), '--passphrase-file');
      if (process.env.CAIRN_PASSPHRASE !== undefined) return nonEmpty(process.env.CAIRN_PASSPHRASE, 'CAIRN_PASSPHRASE');
    }
    if (!process.stdin.isTTY) {
      throw new BackendError('badRequest', 'no passphrase: set CAIRN_PASSPHRASE, or give --passphrase-command or --passphrase-file (no terminal to ask on)');
    }
    if (purpose === 'unlock') return nonEmpty(await prompt('Passphrase: '), 'the passphrase');
    const first = await prompt('New passphrase: ');
    const second = await prompt('Repeat the new passphrase: ');
    if (first !== second) throw new BackendError('badRequest', 'the two passphrases differ');
    return nonEmpty(first, 'the passphrase');
  };
}

function nonEmpty(value: string, what: string): string {
  if (value === '') throw new BackendError('badRequest', `${what} gave an empty passphrase`);
  return value;
}

async function runCommand(command: string): Promise<string> {
  const [file, ...args] = command.split(' ').filter((s) => s !== '');
  if (file === undefined) throw new BackendError('badRequest', '--passphrase-command is empty');
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 65536 }, (err, stdout) => {
      if (err) reject(new BackendError('badRequest', `--passphrase-command failed: ${err.message.split('\n')[0]}`));
      else resolve(stdout.replace(/\r?\n$/, ''));
    });
  });
}

async function readFirstLine(file: string): Promise<string> {
  try {
    return (await fsp.readFile(file, 'utf8')).split(/\r?\n/)[0] ?? '';
  } catch (err) {
    throw new BackendError('badRequest', `cannot read --passphrase-file: ${(err as Error).message}`);
  }
}

/** Reads a line from the terminal without echoing it. */
function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let value = '';
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (text: string): void => {
      for (const ch of text) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new BackendError('badRequest', 'interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
