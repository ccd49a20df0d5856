import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The outcome of checking a host key against a known_hosts file. */
export type HostKeyVerdict = 'match' | 'unknown' | 'mismatch' | 'revoked';

/** The name a host has in known_hosts: `host` on port 22, else `[host]:port`. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** One host pattern of a known_hosts line: plain, wildcard or hashed (|1|salt|hash). */
function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (salt === undefined || hash === undefined) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  return globToRegExp(pattern).test(name);
}

/** Whether a comma-separated host list names `name` (a negated pattern that matches excludes it). */
function hostsMatch(hosts: string, name: string): boolean {
  let matched = false;
  for (const pattern of hosts.split(',')) {
    if (pattern.startsWith('!')) {
      if (patternMatches(pattern.slice(1), name)) return false;
    } else if (patternMatches(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/**
 * Checks `key` (the SSH wire blob of the server's host key) against the
 * lines of a known_hosts file for host:port, as OpenSSH does: a revoked key
 * is refused, a listed key matches, another key for a listed host is a
 * mismatch, and a host with no line is unknown. @cert-authority lines are
 * not supported and are skipped.
 */
export function checkHostKey(text: string, host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  let listed = false;
  let matched = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let fields = line.split(/\s+/);
    let marker: string | null = null;
    if (fields[0]?.startsWith('@') === true) {
      marker = fields[0];
      fields = fields.slice(1);
    }
    const [hosts, , blob] = fields;
    if (hosts === undefined || blob === undefined || !hostsMatch(hosts, name)) continue;
    const same = Buffer.from(blob, 'base64').equals(key);
    if (marker === '@revoked') {
      if (same) return 'revoked';
      continue;
    }
    if (marker !== null) continue;
    listed = true;
    if (same) matched = true;
  }
  if (matched) return 'match';
  return listed ? 'mismatch' : 'unknown';
}

/** Reads a known_hosts file; a missing file knows no hosts. */
export function readKnownHosts(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}
