/**
 * The bandwidth throttle (design.md, "Proxy backends"):
 *
 *     backend-throttle [--read RATE] [--write RATE] [--ops N] 'INNER IDENTIFIER'
 *
 * Keeps read bandwidth (block and tag bytes returned), write bandwidth (block
 * and tag bytes sent) and the rate of block requests under their quotas (see
 * Pacer). Block requests (put, get, exists, existsMany, remove, listBlocks)
 * wait their turn; control requests (tags, locks, flush, stats, admin) are
 * never held behind bulk data: they pass at once, and only their bytes and
 * their count are charged to the quotas. Rates change live through admin.
 *
 * A get's size is known only when it returns: a get is sent once the reads
 * before it have had their quota, and charged when its data arrives, so gets
 * sent together may burst, but the rate over time holds.
 *
 * Run in the client's process (the usual set-up: `openArchive` runs it in
 * process around an `ssh` identifier), requests waiting for their turn hold no
 * slot on the link, so control requests overtake them. A throttle spawned as
 * its own process is reached through the client's window of requests in
 * flight (64), which throttled requests can fill.
 */
import { performance } from 'node:perf_hooks';
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage, ProxyBackend,
} from '../backend.js';
import { expectArgs, formatFields, type AdminTable } from '../admin-commands.js';
import { BackendError } from '../errors.js';
import { UsageError } from '../factory.js';
import { proxyInfo, runProxyAdmin } from '../proxy-admin.js';
import { parseByteRate } from '../units.js';
import { Pacer, waitUntil } from './pacer.js';

/** Quotas in bytes per second (read, write) and requests per second (ops); 0 is unlimited. */
export interface ThrottleRates {
  read: number;
  write: number;
  ops: number;
}

type Quota = keyof ThrottleRates;

export class ThrottleBackend implements ProxyBackend {
  private readonly pacers: Record<Quota, Pacer>;
  private readonly counters = { bytesRead: 0, bytesWritten: 0, requests: 0, delayedMs: 0 };
  private closed = false;
  private readonly adminTable: AdminTable = {
    info: { usage: 'info', summary: 'the rates, and the inner archive', run: () => proxyInfo({ backend: 'throttle', ...this.rateFields() }, this.inner) },
    rates: { usage: 'rates', summary: 'the quotas and what has moved since opened', run: () => this.showRates() },
    'set-rate': { usage: 'set-rate read|write|ops VALUE', summary: 'change a quota now (VALUE like 512k, 10M, 2MB/s; ops in requests/s; 0 or unlimited lifts it)', run: (args) => this.setRate(args) },
  };

  constructor(readonly inner: Backend, rates: Partial<ThrottleRates> = {}) {
    this.pacers = { read: new Pacer(rates.read ?? 0), write: new Pacer(rates.write ?? 0), ops: new Pacer(rates.ops ?? 0) };
  }

  /** The current quotas (0 is unlimited). */
  get rates(): ThrottleRates {
    return { read: this.pacers.read.rate, write: this.pacers.write.rate, ops: this.pacers.ops.rate };
  }

  info(): BackendInfo {
    const inner = this.inner.info();
    const features = inner.features.includes('admin') ? inner.features : [...inner.features, 'admin' as const];
    return { ...inner, backend: 'throttle', features };
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.open();
    const now = performance.now();
    const start = Math.max(this.pacers.write.turn(now), this.pacers.ops.turn(now));
    const end = Math.max(this.pacers.write.charge(data.byteLength, now), this.pacers.ops.charge(1, now));
    this.counters.requests += 1;
    this.counters.bytesWritten += data.byteLength;
    await this.wait(start);
    await this.inner.put(key, data);
    await this.wait(end);
  }

  exists(key: string): Promise<boolean> {
    return this.request(() => this.inner.exists(key));
  }

  existsMany(keys: string[]): Promise<boolean[]> {
    return this.request(() => this.inner.existsMany(keys));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.open();
    const now = performance.now();
    const start = Math.max(this.pacers.read.turn(now), this.pacers.ops.turn(now));
    const opsEnd = this.pacers.ops.charge(1, now);
    this.counters.requests += 1;
    await this.wait(start);
    const sent = performance.now();
    const data = await this.inner.get(key);
    const size = data?.byteLength ?? 0;
    this.counters.bytesRead += size;
    await this.wait(Math.max(this.pacers.read.charge(size, sent), opsEnd));
    return data;
  }

  remove(key: string): Promise<boolean> {
    return this.request(() => this.inner.remove(key));
  }

  listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    return this.request(() => this.inner.listBlocks(cursor, limit));
  }

  setTag(name: string, value: Uint8Array): Promise<void> {
    this.open();
    this.control('write', value?.byteLength ?? 0);
    return this.inner.setTag(name, value);
  }

  async getTag(name: string): Promise<Uint8Array | null> {
    this.open();
    this.control('read', 0);
    const value = await this.inner.getTag(name);
    this.pacers.read.charge(value?.byteLength ?? 0);
    this.counters.bytesRead += value?.byteLength ?? 0;
    return value;
  }

  removeTag(name: string): Promise<boolean> {
    this.open();
    this.control(null, 0);
    return this.inner.removeTag(name);
  }

  listTags(): Promise<string[]> {
    this.open();
    this.control(null, 0);
    return this.inner.listTags();
  }

  lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    this.open();
    this.control(null, 0);
    return this.inner.lockTag(name, owner, ttlSeconds);
  }

  unlockTag(name: string, owner: string): Promise<void> {
    this.open();
    this.control(null, 0);
    return this.inner.unlockTag(name, owner);
  }

  tagLocked(name: string): Promise<string | null> {
    this.open();
    this.control(null, 0);
    return this.inner.tagLocked(name);
  }

  flush(): Promise<void> {
    this.open();
    this.control(null, 0);
    return this.inner.flush();
  }

  stats(): Promise<BackendStats> {
    this.open();
    return this.inner.stats();
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.open();
    return runProxyAdmin('throttle', this.adminTable, this.inner, command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.inner.close();
  }

  /** A block request that moves no bulk data: paced by the request quota only. */
  private async request<T>(fn: () => Promise<T>): Promise<T> {
    this.open();
    const now = performance.now();
    const start = this.pacers.ops.turn(now);
    const end = this.pacers.ops.charge(1, now);
    this.counters.requests += 1;
    await this.wait(start);
    const result = await fn();
    await this.wait(end);
    return result;
  }

  /** A control request: never delayed, but charged to the quotas. */
  private control(direction: 'read' | 'write' | null, bytes: number): void {
    this.pacers.ops.charge(1);
    this.counters.requests += 1;
    if (direction === 'write') {
      this.pacers.write.charge(bytes);
      this.counters.bytesWritten += bytes;
    }
  }

  private async wait(time: number): Promise<void> {
    this.counters.delayedMs += await waitUntil(time);
  }

  private rateFields(): Record<string, string> {
    return { read: formatRate(this.pacers.read.rate, 'B/s'), write: formatRate(this.pacers.write.rate, 'B/s'), ops: formatRate(this.pacers.ops.rate, 'requests/s') };
  }

  private showRates(): AdminResult {
    const fields = { ...this.rateFields(), ...this.counters, delayedMs: Math.round(this.counters.delayedMs) };
    return { text: formatFields(fields), data: { rates: this.rates, ...this.counters } };
  }

  private setRate(args: string[]): AdminResult {
    expectArgs(args, 2, 'set-rate read|write|ops VALUE');
    const [which, value] = args as [string, string];
    if (which !== 'read' && which !== 'write' && which !== 'ops') {
      throw new BackendError('badRequest', 'usage: set-rate read|write|ops VALUE');
    }
    try {
      this.pacers[which].rate = parseQuota(which, value);
    } catch (err) {
      if (err instanceof UsageError) throw new BackendError('badRequest', err.message);
      throw err;
    }
    return { text: `${which} quota: ${this.rateFields()[which]}`, data: { rates: this.rates } };
  }

  private open(): void {
    if (this.closed) throw new BackendError('unavailable', 'the throttle archive is closed');
  }
}

/** Parses one quota: bytes per second with units for read/write, requests per second for ops; 0, off or unlimited lifts it. */
export function parseQuota(which: Quota, text: string): number {
  if (/^(0|off|unlimited|none)$/i.test(text.trim())) return 0;
  if (which === 'ops') {
    const match = /^(\d+(?:\.\d+)?)\s*(?:\/\s*s)?$/.exec(text.trim());
    if (match === null) throw new UsageError(`ops must be a number of requests per second, e.g. 20 or 0.5/s: got ${JSON.stringify(text)}`);
    return Number(match[1]);
  }
  return parseByteRate(text, `${which} rate`);
}

export function formatRate(rate: number, unit: string): string {
  if (rate === 0) return 'unlimited';
  if (unit !== 'B/s') return `${rate} ${unit}`;
  const units = ['', 'Ki', 'Mi', 'Gi'];
  let value = rate;
  let i = 0;
  while (value >= 1024 && i < units.length - 1 && Number.isInteger(value / 1024)) {
    value /= 1024;
    i += 1;
  }
  return `${value} ${units[i]}${unit}`;
}
