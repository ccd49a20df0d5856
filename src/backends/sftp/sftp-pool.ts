import { readFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import PQueue from 'p-queue';
import type { Client, ConnectConfig, SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { BackendError } from '../errors.js';
import type { SftpConfig } from './config.js';
import { isConnectionError, sftpErrorToBackendError } from './errors.js';
import { connectionLost } from './sftp-ops.js';
import { checkHostKey, knownHostsName, readKnownHosts, type HostKeyVerdict } from './known-hosts.js';

/** SFTP requests in flight per connection. */
const REQUESTS_PER_CONNECTION = 8;
const KEEPALIVE_MS = 10_000;

/** When a request that failed with a lost connection may be sent again. */
export type RetryPolicy =
  /** The request is idempotent: retry after any connection loss. */
  | 'idempotent'
  /** Retry only when the connection failed before the request was sent. */
  | 'before-send';

interface Connection {
  client: SftpClient | null;
  sftp: SFTPWrapper | null;
  connecting: Promise<SFTPWrapper> | null;
  busy: number;
}

class DeadlineError extends Error {}

/** ssh2-sftp-client keeps the ssh2 Client here (not in its type declarations). */
function sshClientOf(client: SftpClient): Client {
  return (client as unknown as { client: Client }).client;
}

/**
 * A pool of SFTP connections behind one request queue (p-queue), so that
 * pipelined puts overlap. Each request gets `timeoutSeconds` from the moment
 * it starts, connecting included: a hung server gives `unavailable`, never a
 * hang, and its connection is dropped. A lost connection is re-established
 * on the next request; requests are retried where that is safe.
 */
export class SftpPool {
  private readonly queue: PQueue;
  private readonly connections: Connection[];
  private closed = false;
  private hostKeyVerdict: HostKeyVerdict | null = null;
  readonly label: string;

  constructor(private readonly config: SftpConfig) {
    this.connections = Array.from({ length: config.connections }, () => ({ client: null, sftp: null, connecting: null, busy: 0 }));
    this.queue = new PQueue({ concurrency: config.connections * REQUESTS_PER_CONNECTION });
    this.label = `${config.user}@${config.host}${config.port === 22 ? '' : ` (port ${config.port})`}`;
  }

  /** Runs `fn` on a connection within the timeout, reconnecting and retrying as `retry` allows. */
  run<T>(what: string, retry: RetryPolicy, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new BackendError('unavailable', `the sftp archive ${this.label} is closed`));
    return this.queue.add(() => this.attempt(what, retry, fn));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue.clear();
    await this.queue.onIdle();
    await Promise.all(this.connections.map(async (conn) => {
      const client = conn.client;
      conn.client = null;
      conn.sftp = null;
      if (client !== null) {
        await Promise.race([client.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
        sshClientOf(client).destroy();
      }
    }));
  }

  private async attempt<T>(what: string, retry: RetryPolicy, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    const timeoutMs = this.config.timeoutSeconds * 1000;
    const deadline = Date.now() + timeoutMs;
    let delay = 50;
    let lastError: unknown = null;
    for (;;) {
      const conn = this.pick();
      let used: SFTPWrapper | null = null;
      try {
        const sftp = await withDeadline(this.ready(conn), deadline, () => this.drop(conn));
        used = sftp;
        conn.busy += 1;
        try {
          return await withDeadline(fn(sftp), deadline, () => this.drop(conn, sftp));
        } finally {
          conn.busy -= 1;
        }
      } catch (err) {
        if (err instanceof DeadlineError) {
          const why = lastError === null ? 'no answer' : sftpErrorToBackendError(lastError, 'last error').message;
          throw new BackendError('unavailable', `${what}: ${this.label} did not complete within ${this.config.timeoutSeconds} s (${why})`);
        }
        if (this.closed || !isConnectionError(err)) throw sftpErrorToBackendError(err, `${what} (${this.label})`);
        if (used !== null) this.drop(conn, used);
        lastError = err;
        if ((used !== null && retry !== 'idempotent') || Date.now() + delay >= deadline) {
          throw sftpErrorToBackendError(err, `${what} (${this.label})`);
        }
        await sleep(delay * (0.5 + Math.random()));
        delay = Math.min(delay * 2, 1000);
      }
    }
  }

  private pick(): Connection {
    let best = this.connections[0] as Connection;
    for (const conn of this.connections) {
      const score = (c: Connection): number => c.busy + (c.sftp === null ? 0.5 : 0);
      if (score(conn) < score(best)) best = conn;
    }
    return best;
  }

  private ready(conn: Connection): Promise<SFTPWrapper> {
    if (conn.sftp !== null) return Promise.resolve(conn.sftp);
    if (conn.connecting === null) {
      conn.connecting = this.connect(conn).finally(() => {
        conn.connecting = null;
      });
    }
    return conn.connecting;
  }

  private async connect(conn: Connection): Promise<SFTPWrapper> {
    // ssh2-sftp-client's default listeners print to the console; stdout is the protocol.
    const client = new SftpClient('cairn', { error: () => undefined, end: () => undefined, close: () => undefined });
    conn.client = client;
    const ssh = sshClientOf(client);
    ssh.on('close', () => {
      if (conn.sftp !== null && conn.client === client) connectionLost(conn.sftp);
      if (conn.client === client) {
        conn.sftp = null;
        conn.client = null;
      }
    });
    try {
      const sftp = await client.connect(this.connectConfig());
      ssh.setNoDelay(true); // without it a 64 MiB transfer crawls at 2 MiB/s
      if (conn.client !== client) throw new BackendError('unavailable', 'connection dropped while connecting');
      sftp.on('close', () => connectionLost(sftp));
      conn.sftp = sftp;
      return sftp;
    } catch (err) {
      ssh.destroy();
      if (conn.client === client) conn.client = null;
      const explained = this.explainConnectError(err);
      if (explained instanceof BackendError) throw explained;
      // Anything else while connecting (refused, reset, ended early) may pass.
      throw new BackendError('unavailable', `cannot connect to ${this.label}: ${(err as Error | undefined)?.message ?? String(err)}`, { cause: err });
    }
  }

  /**
   * Drops a connection (lost or hung): its requests fail, the next request
   * reconnects. With `only`, nothing happens if the connection has already
   * been replaced by a newer one.
   */
  private drop(conn: Connection, only?: SFTPWrapper): void {
    if (only !== undefined && conn.sftp !== only) {
      connectionLost(only);
      return;
    }
    const client = conn.client;
    if (conn.sftp !== null) connectionLost(conn.sftp);
    conn.client = null;
    conn.sftp = null;
    if (client !== null) sshClientOf(client).destroy();
  }

  private connectConfig(): ConnectConfig {
    const { config } = this;
    const base: ConnectConfig = {
      host: config.host,
      port: config.port,
      username: config.user,
      readyTimeout: config.timeoutSeconds * 1000,
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: 3,
    };
    if (config.knownHosts !== null) {
      const known = readKnownHosts(config.knownHosts);
      base.hostVerifier = (key: Buffer): boolean => {
        this.hostKeyVerdict = checkHostKey(known, config.host, config.port, key);
        return this.hostKeyVerdict === 'match';
      };
    }
    if (process.env.SSH_AUTH_SOCK !== undefined && config.identity === undefined) base.agent = process.env.SSH_AUTH_SOCK;
    const identity = config.identity ?? ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => path.join(homedir(), '.ssh', f)).find(existsSync);
    if (identity !== undefined) {
      try {
        base.privateKey = readFileSync(identity);
      } catch (err) {
        throw new BackendError('badRequest', `cannot read the identity file ${identity}: ${(err as Error).message}`);
      }
    }
    return base;
  }

  private explainConnectError(err: unknown): BackendError | null {
    if (err instanceof BackendError) return err;
    const message = (err as Error | undefined)?.message ?? String(err);
    if (/verification failed|Host denied/i.test(message) && this.hostKeyVerdict !== null && this.hostKeyVerdict !== 'match') {
      const file = this.config.knownHosts ?? '';
      const why = {
        unknown: `is not in ${file}; add it (ssh-keyscan -p ${this.config.port} ${this.config.host} >> ${file}) or pass --known-hosts FILE`,
        mismatch: `does not match the key listed in ${file}: someone may be intercepting the connection, or the host key changed`,
        revoked: `is marked @revoked in ${file}`,
      }[this.hostKeyVerdict];
      return new BackendError('badRequest', `host key of ${knownHostsName(this.config.host, this.config.port)} ${why}`);
    }
    if (/privateKey|private key|passphrase/i.test(message)) {
      return new BackendError('badRequest', `cannot use the identity ${this.config.identity ?? '(default key)'}: ${message}`);
    }
    if (/All configured authentication methods failed/i.test(message)) {
      return new BackendError('badRequest', `${this.label} refused the login (wrong user or key?); pass --identity FILE`);
    }
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Races `promise` against the deadline; on expiry calls `onExpire` and throws DeadlineError. */
async function withDeadline<T>(promise: Promise<T>, deadline: number, onExpire: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onExpire();
      reject(new DeadlineError());
    }, Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([promise, expiry]);
  } finally {
    clearTimeout(timer);
    promise.catch(() => undefined);
  }
}
