/**
 * A real OpenSSH sshd for tests: a child process on a free 127.0.0.1 port,
 * with a generated host key, a generated client key and its own config in a
 * scratch directory. Remote commands find cairn's built executables on PATH
 * (wrappers in the scratch `bin/`, put on PATH by `SetEnv`), so nothing is
 * installed globally. `stop()` kills the sshd and every session it started.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { userInfo } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './scratch.js';

const SSHD = '/usr/sbin/sshd';
/** dist/src/cli, where the built executables are. */
export const CLI_DIR = fileURLToPath(new URL('../../src/cli/', import.meta.url));

export interface SshdOptions {
  /** Listen on this port instead of a free one (to restart on the same port). */
  port?: number;
}

export class Sshd {
  private child: ChildProcess | null = null;
  readonly user = userInfo().username;
  readonly hostKey: string;
  readonly clientKey: string;
  readonly knownHosts: string;
  readonly binDir: string;
  private readonly config: string;

  private constructor(readonly dir: string, public port: number) {
    this.hostKey = path.join(dir, 'host_ed25519');
    this.clientKey = path.join(dir, 'client_ed25519');
    this.knownHosts = path.join(dir, 'known_hosts');
    this.binDir = path.join(dir, 'bin');
    this.config = path.join(dir, 'sshd_config');
  }

  /** Generates keys and config under `dir` (created) and starts sshd. */
  static async start(dir: string, options: SshdOptions = {}): Promise<Sshd> {
    if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: apt-get install openssh-server`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const sshd = new Sshd(dir, options.port ?? (await freePort()));
    sshd.writeFiles();
    await sshd.launch();
    return sshd;
  }

  /** The `ssh` command line (as an identifier prefix) that logs in to this sshd. */
  sshCommand(): string {
    return `ssh -p ${this.port} -i ${this.clientKey} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null `
      + `-o BatchMode=yes -o LogLevel=ERROR ${this.user}@127.0.0.1`;
  }

  /** Starts sshd again (after `kill`) on the same port with the same keys. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /** Kills sshd and every session process under it, as a crash would. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === null || child.pid === undefined) return;
    const pids = [...descendants(child.pid), child.pid];
    const exited = child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => child.once('exit', () => resolve()));
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    await exited;
    this.child = null;
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) sshd and its sessions: a hung server, for real. */
  freeze(frozen: boolean): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    for (const p of [pid, ...descendants(pid)]) {
      try {
        process.kill(p, frozen ? 'SIGSTOP' : 'SIGCONT');
      } catch {
        // gone
      }
    }
  }

  stop(): Promise<void> {
    this.freeze(false);
    return this.kill('SIGKILL');
  }

  private writeFiles(): void {
    mkdirSync(this.binDir, { recursive: true });
    if (!existsSync(this.hostKey)) keygen(this.hostKey);
    if (!existsSync(this.clientKey)) keygen(this.clientKey);
    writeFileSync(path.join(this.dir, 'authorized_keys'), readFileSync(`${this.clientKey}.pub`), { mode: 0o600 });
    const hostPub = readFileSync(`${this.hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    writeFileSync(this.knownHosts, `[127.0.0.1]:${this.port} ${hostPub}\n`, { mode: 0o600 });
    for (const command of readdirSync(CLI_DIR).filter((f) => /^backend-.*\.js$/.test(f))) {
      const script = `#!/bin/sh\nexec ${process.execPath} ${path.join(CLI_DIR, command)} "$@"\n`;
      writeFileSync(path.join(this.binDir, command.replace(/\.js$/, '')), script, { mode: 0o755 });
    }
    writeFileSync(this.config, [
      `Port ${this.port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${this.hostKey}`,
      `PidFile ${path.join(this.dir, 'sshd.pid')}`,
      'UsePAM no',
      'StrictModes no',
      `AuthorizedKeysFile ${path.join(this.dir, 'authorized_keys')}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'MaxStartups 200',
      'MaxSessions 200',
      'LogLevel ERROR',
      'Subsystem sftp internal-sftp',
      // SHLVL=1: bash, run by sshd for the remote command, then skips the
      // login user's ~/.bashrc (seconds per login on a developer machine).
      `SetEnv PATH=${this.binDir}:${path.dirname(process.execPath)}:/usr/bin:/bin SHLVL=1`,
      '',
    ].join('\n'), { mode: 0o600 });
  }

  private async launch(): Promise<void> {
    if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    // -D: stay in the foreground as our child; -e: log to stderr.
    const child = spawn(SSHD, ['-D', '-e', '-f', this.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      stderr = (stderr + text).slice(-4000);
    });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`sshd exited with status ${child.exitCode}: ${stderr}`);
      if (await accepts(this.port)) return;
      await sleep(50);
    }
    throw new Error(`sshd did not listen on port ${this.port}: ${stderr}`);
  }
}

function keygen(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cairn-test', '-f', file], { stdio: 'ignore' });
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something answers with an SSH banner on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('data', (data) => done(data.toString('latin1').startsWith('SSH-')));
    socket.once('error', () => done(false));
  });
}

/** Every process below `pid`, read from /proc. */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = parents.get(ppid) ?? [];
    list.push(Number(entry));
    parents.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of parents.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}
