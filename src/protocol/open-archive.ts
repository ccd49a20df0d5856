import { spawn, type ChildProcess } from 'node:child_process';
import type { Backend, LogLevel } from '../backends/backend.js';
import { BackendError } from '../backends/errors.js';
import { OrderedBackend } from '../backends/sequencer.js';
import { redactIdentifier, splitIdentifier } from './identifier.js';
import { FatalError, RemoteBackend } from './remote-backend.js';

/** How an identifier whose command is one of cairn's own is to be run. */
export interface OwnCommand {
  /** Opens the backend in this process (protocol.md allows it when behaviour is identical). */
  inProcess?: () => Promise<Backend>;
  /** The argv to spawn instead of looking the command up on PATH. */
  argv?: string[];
}

export interface OpenArchiveOptions {
  /** Finds cairn's own commands without relying on PATH. */
  resolveOwn?: (argv: string[]) => OwnCommand | undefined;
  onLog?: (level: LogLevel, text: string) => void;
  /** Where the child's stderr goes, prefixed with its name; default process.stderr. */
  stderr?: NodeJS.WritableStream | null;
  /** Seconds to wait for the greeting; default CAIRN_GREETING_TIMEOUT or 60. */
  greetingTimeout?: number;
  maxInFlight?: number;
}

const STDERR_TAIL_BYTES = 4096;

function defaultLog(label: string): (level: LogLevel, text: string) => void {
  return (level, text) => {
    process.stderr.write(`${label}: ${level}: ${text}\n`);
  };
}

/**
 * Opens an archive identifier: splits it, runs cairn's own backends in
 * process or by absolute path, and spawns anything else (ssh included) with
 * no shell, speaking the protocol on its stdin/stdout.
 */
export async function openArchive(identifier: string, options: OpenArchiveOptions = {}): Promise<Backend> {
  const argv = splitIdentifier(identifier);
  const label = redactIdentifier(identifier);
  const own = options.resolveOwn?.(argv);
  if (own?.inProcess !== undefined) {
    return new OrderedBackend(await own.inProcess());
  }
  const name = (argv[0] as string).split('/').pop() as string;
  return spawnArchive(own?.argv ?? argv, name, label, options);
}

async function spawnArchive(argv: string[], name: string, label: string, options: OpenArchiveOptions): Promise<Backend> {
  const [command, ...args] = argv as [string, ...string[]];
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    throw new BackendError('unavailable', `cannot start archive ${label}: ${(err as Error).message}`);
  }
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stderrTail = '';
  let spawnError: string | null = null;
  child.once('error', (err: NodeJS.ErrnoException) => {
    spawnError = err.code === 'ENOENT' ? `command not found: ${command}` : err.message;
  });
  const stderrSink = options.stderr === undefined ? process.stderr : options.stderr;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    stderrTail = (stderrTail + text).slice(-STDERR_TAIL_BYTES);
    if (stderrSink !== null) {
      stderrSink.write(text.replace(/^(?=.)/gm, `[${name}] `));
    }
  });
  const describeEnd = (): string => {
    const parts: string[] = [];
    if (spawnError !== null) parts.push(spawnError);
    else if (child.exitCode !== null) parts.push(`exit status ${child.exitCode}`);
    if (child.signalCode !== null) parts.push(`killed by ${child.signalCode}`);
    const tail = stderrTail.trim();
    if (tail !== '') parts.push(`stderr: ${tail}`);
    return parts.length > 0 ? ` (${parts.join('; ')})` : '';
  };
  const stdin = child.stdin;
  const stdout = child.stdout;
  if (stdin === null || stdout === null) throw new BackendError('internal', 'child has no pipes');
  stdin.on('error', () => undefined);

  const timeoutSeconds = options.greetingTimeout ?? Number(process.env.CAIRN_GREETING_TIMEOUT ?? 60);
  let timer: NodeJS.Timeout | undefined;
  const connecting = RemoteBackend.connect(stdout, stdin, {
    label,
    maxInFlight: options.maxInFlight,
    onLog: options.onLog ?? defaultLog(name),
    describeEnd,
    onClosed: async () => {
      await waitOrKill(child, exited);
    },
  });
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new BackendError('unavailable', `${label}: no greeting within ${timeoutSeconds} s`));
    }, timeoutSeconds * 1000);
  });
  try {
    return await Promise.race([connecting, timeout]);
  } catch (err) {
    child.kill('SIGKILL');
    // Let the child's last words (stderr, exit status) reach the message.
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
    const base = err instanceof BackendError ? err : new BackendError('unavailable', String(err));
    const detail = base instanceof FatalError ? '' : describeEnd();
    throw new BackendError(base.code, `cannot open archive ${base.message}${detail}`);
  } finally {
    clearTimeout(timer);
    connecting.catch(() => undefined);
  }
}

/** After `close`, a child should exit by itself; one that lingers is killed. */
async function waitOrKill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  const timer = setTimeout(() => child.kill('SIGTERM'), 10_000);
  await exited;
  clearTimeout(timer);
}
