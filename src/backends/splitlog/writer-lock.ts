/**
 * One writer at a time per splitlog (issue: "a lock that a crashed process
 * cannot leave behind forever"). The lock is a row of the metadata file,
 * taken and released in IMMEDIATE transactions, so SQLite arbitrates races
 * between processes. The row names its holder: host, boot id, pid and the
 * process's start time, plus a token per open backend. A holder on this host
 * is live while a process with that pid and start time runs in this boot; a
 * holder on another host (a shared filesystem) counts as live until its
 * heartbeat, renewed at every commit, is older than REMOTE_STALE_MS.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Metadata } from './metadata.js';

const REMOTE_STALE_MS = 10 * 60_000;

export interface WriterIdentity {
  host: string;
  boot: string | null;
  pid: number;
  start: string | null;
  token: string;
  /** Heartbeat, ms since the epoch. */
  since: number;
}

function readProc(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

const BOOT_ID = readProc('/proc/sys/kernel/random/boot_id')?.trim() ?? null;

/** A process's start time in clock ticks since boot (Linux), or null where unknown. */
export function processStart(pid: number): string | null {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // Field 2 (comm) may hold spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null;
}

export function newIdentity(): WriterIdentity {
  return {
    host: hostname(), boot: BOOT_ID, pid: process.pid, start: processStart(process.pid), token: randomBytes(12).toString('hex'), since: Date.now(),
  };
}

function pidRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the process that took the lock may still be running. */
export function holderAlive(holder: WriterIdentity, now = Date.now()): boolean {
  if (holder.host !== hostname()) return now - holder.since < REMOTE_STALE_MS;
  if (holder.boot !== null && BOOT_ID !== null && holder.boot !== BOOT_ID) return false;
  if (!pidRuns(holder.pid)) return false;
  if (holder.start !== null) {
    const start = processStart(holder.pid);
    if (start !== null && start !== holder.start) return false;
  }
  return true;
}

function parse(text: string | undefined): WriterIdentity | null {
  if (text === undefined) return null;
  try {
    const value = JSON.parse(text) as WriterIdentity;
    return typeof value.pid === 'number' && typeof value.token === 'string' ? value : null;
  } catch {
    return null;
  }
}

export function describeHolder(holder: WriterIdentity): string {
  return `process ${holder.pid} on ${holder.host}`;
}

/**
 * Takes the lock for `me`; returns null when taken, else the live holder.
 * Reentrant for the same token. A process that has to wait says so
 * (`writerWanted`, a timestamp), and the holder hands the lock over at its
 * next quiet moment (see SplitlogWriter).
 */
export function tryAcquireWriter(meta: Metadata, me: WriterIdentity, announceWait = false): WriterIdentity | null {
  return meta.immediate(() => {
    const holder = parse(meta.getMeta('writer'));
    if (holder !== null && holder.token !== me.token && holderAlive(holder)) {
      if (announceWait) meta.setMeta('writerWanted', String(Date.now()));
      return holder;
    }
    meta.setMeta('writer', JSON.stringify({ ...me, since: Date.now() }));
    meta.deleteMeta('writerWanted');
    return null;
  });
}

/** When another process last asked for the lock (ms since the epoch), or 0. */
export function writerWantedAt(meta: Metadata): number {
  return Number(meta.getMeta('writerWanted') ?? 0);
}

/** Renews the heartbeat; call inside a transaction. */
export function renewWriter(meta: Metadata, me: WriterIdentity): void {
  meta.setMeta('writer', JSON.stringify({ ...me, since: Date.now() }));
}

export function releaseWriter(meta: Metadata, me: WriterIdentity): void {
  meta.immediate(() => {
    const holder = parse(meta.getMeta('writer'));
    if (holder !== null && holder.token === me.token) meta.deleteMeta('writer');
  });
}

/** The current holder, live or not (for info). */
export function currentWriter(meta: Metadata): WriterIdentity | null {
  const holder = parse(meta.getMeta('writer'));
  return holder !== null && holderAlive(holder) ? holder : null;
}
