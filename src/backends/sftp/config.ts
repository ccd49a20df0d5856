import { homedir, userInfo } from 'node:os';
import * as path from 'node:path';
import { UsageError } from '../factory.js';
import { parseProxyArgs } from '../proxy-args.js';

/** Everything `backend-sftp` needs to reach its archive. */
export interface SftpConfig {
  user: string;
  host: string;
  port: number;
  /** The archive directory on the remote host (relative paths start at the login directory). */
  path: string;
  /** Private key file; undefined: the ssh agent ($SSH_AUTH_SOCK) and then ~/.ssh/id_{ed25519,ecdsa,rsa}. */
  identity: string | undefined;
  /** known_hosts file to check the host key against; null with --no-host-key-check. */
  knownHosts: string | null;
  connections: number;
  /** Seconds one request (connecting included) may take before it fails with `unavailable`. */
  timeoutSeconds: number;
}

export const SFTP_USAGE = 'backend-sftp [--port N] [--identity FILE] [--known-hosts FILE | --no-host-key-check] [--connections N] [--timeout SECONDS] USER@HOST:PATH';

function positiveInt(value: string | undefined, what: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new UsageError(`${what} must be an integer from 1 to ${max}: got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** Splits USER@HOST:PATH (USER optional, HOST may be [IPv6]). */
export function parseRemote(text: string): { user: string | undefined; host: string; path: string } {
  const match = /^(?:([^@/:]+)@)?(\[[0-9A-Fa-f:.]+\]|[^@/:[\]]+):(.*)$/.exec(text);
  if (match === null) throw new UsageError(`expected USER@HOST:PATH, got ${JSON.stringify(text)}`);
  const host = (match[2] as string).replace(/^\[(.*)\]$/, '$1');
  return { user: match[1], host, path: match[3] === '' ? '.' : (match[3] as string) };
}

export function parseSftpArgs(argv: readonly string[]): SftpConfig {
  const { options, positional } = parseProxyArgs(argv, {
    values: ['port', 'identity', 'known-hosts', 'connections', 'timeout'],
    flags: ['no-host-key-check'],
  });
  const one = (name: string): string | undefined => options.get(name)?.[0];
  if (positional.length !== 1) throw new UsageError('expected exactly one USER@HOST:PATH');
  if (one('known-hosts') !== undefined && one('no-host-key-check') !== undefined) {
    throw new UsageError('--known-hosts and --no-host-key-check exclude each other');
  }
  const remote = parseRemote(positional[0] as string);
  const timeout = one('timeout');
  if (timeout !== undefined && !(/^\d+(\.\d+)?$/.test(timeout) && Number(timeout) > 0 && Number(timeout) <= 3600)) {
    throw new UsageError(`--timeout must be a number of seconds above 0 and at most 3600: got ${JSON.stringify(timeout)}`);
  }
  return {
    user: remote.user ?? userInfo().username,
    host: remote.host,
    port: positiveInt(one('port'), '--port', 65535) ?? 22,
    path: remote.path,
    identity: one('identity'),
    knownHosts: one('no-host-key-check') !== undefined ? null : one('known-hosts') ?? path.join(homedir(), '.ssh', 'known_hosts'),
    connections: positiveInt(one('connections'), '--connections', 64) ?? 4,
    timeoutSeconds: timeout === undefined ? 30 : Number(timeout),
  };
}
