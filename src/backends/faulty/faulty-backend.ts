/**
 * The fault-injecting proxy, for tests and for rehearsing failures:
 *
 *     backend-faulty [OPTIONS] 'INNER IDENTIFIER'
 *
 * Follows a FaultSchedule (fault-schedule.ts): fails chosen operations with
 * chosen codes, SIGKILLs its own process after N operations, delays
 * operations, flips a byte in returned data, drops writes while acknowledging
 * them (a lying disk), and logs every operation as a JSON line (Ugarit's
 * debugging backend). With nothing scheduled it is a plain pass-through.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  AdminResult, Backend, BackendInfo, BackendStats, BlockPage, LogLevel, ProxyBackend,
} from '../backend.js';
import type { AdminTable } from '../admin-commands.js';
import { BackendError, toBackendError } from '../errors.js';
import { checkBlockSize, checkKey, checkTagName } from '../names.js';
import { proxyInfo, runProxyAdmin } from '../proxy-admin.js';
import { scheduleAsOptions, type FailSpec, type FaultOp, type FaultSchedule } from './fault-schedule.js';
import { SeededRandom } from './seeded-random.js';

/** What one log line says about an operation. */
interface Detail {
  key?: string;
  keys?: number;
  tag?: string;
  bytes?: number;
}

export interface FaultyOptions {
  log?: (level: LogLevel, text: string) => void;
  /** What happens at --kill-after; default SIGKILL of this process. */
  kill?: () => void;
}

export class FaultyBackend implements ProxyBackend {
  private total = 0;
  private readonly perOp = new Map<FaultOp, number>();
  private getsWithData = 0;
  private tagsWithData = 0;
  private readonly injected = { failed: 0, dropped: 0, corrupted: 0, delayed: 0 };
  private readonly dropRandom: SeededRandom;
  private readonly corruptRandom: SeededRandom;
  private logFd: number | null = null;
  private closed = false;
  private readonly adminTable: AdminTable = {
    info: { usage: 'info', summary: 'the fault schedule, what was injected so far, and the inner archive', run: () => this.describe() },
  };

  constructor(readonly inner: Backend, readonly schedule: FaultSchedule, private readonly options: FaultyOptions = {}) {
    this.dropRandom = new SeededRandom(schedule.seed);
    this.corruptRandom = new SeededRandom(schedule.seed ^ 0x5bd1e995);
    if (schedule.logFile !== null) {
      try {
        this.logFd = openSync(schedule.logFile, 'a', 0o600);
      } catch (err) {
        throw new BackendError('internal', `cannot open the fault log ${schedule.logFile}: ${(err as Error).message}`);
      }
    }
    this.writeLog({ event: 'start', seed: schedule.seed, pid: process.pid });
    if (schedule.randomSeed) options.log?.('info', `backend-faulty: seed ${schedule.seed} (give --seed ${schedule.seed} to repeat this run)`);
  }

  info(): BackendInfo {
    const inner = this.inner.info();
    const features = inner.features.includes('admin') ? inner.features : [...inner.features, 'admin' as const];
    return { ...inner, backend: 'faulty', features };
  }

  put(key: string, data: Uint8Array): Promise<void> {
    return this.run('put', { key, bytes: data?.byteLength }, () => this.inner.put(key, data), () => {
      checkKey(key);
      const info = this.inner.info();
      checkBlockSize(data, info.blockSize);
      if (!info.writable) throw new BackendError('readOnly', 'the inner archive is read-only');
    });
  }

  exists(key: string): Promise<boolean> {
    return this.run('exists', { key }, () => this.inner.exists(key));
  }

  existsMany(keys: string[]): Promise<boolean[]> {
    return this.run('existsMany', { keys: Array.isArray(keys) ? keys.length : 0 }, () => this.inner.existsMany(keys));
  }

  get(key: string): Promise<Uint8Array | null> {
    return this.run('get', { key }, async (faults) => {
      const data = await this.inner.get(key);
      if (data === null || data.byteLength === 0) return data;
      this.getsWithData += 1;
      return this.maybeCorrupt(data, this.schedule.corruptGets.includes(this.getsWithData), faults);
    });
  }

  remove(key: string): Promise<boolean> {
    return this.run('remove', { key }, () => this.inner.remove(key));
  }

  listBlocks(cursor: string | null, limit: number): Promise<BlockPage> {
    return this.run('listBlocks', {}, () => this.inner.listBlocks(cursor, limit));
  }

  setTag(name: string, value: Uint8Array): Promise<void> {
    return this.run('setTag', { tag: name, bytes: value?.byteLength }, () => this.inner.setTag(name, value), () => {
      checkTagName(name);
      if (!this.inner.info().writable) throw new BackendError('readOnly', 'the inner archive is read-only');
    });
  }

  getTag(name: string): Promise<Uint8Array | null> {
    return this.run('getTag', { tag: name }, async (faults) => {
      const value = await this.inner.getTag(name);
      if (value === null || value.byteLength === 0) return value;
      this.tagsWithData += 1;
      return this.maybeCorrupt(value, this.schedule.corruptTags.includes(this.tagsWithData), faults);
    });
  }

  removeTag(name: string): Promise<boolean> {
    return this.run('removeTag', { tag: name }, () => this.inner.removeTag(name));
  }

  listTags(): Promise<string[]> {
    return this.run('listTags', {}, () => this.inner.listTags());
  }

  lockTag(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    return this.run('lockTag', { tag: name }, () => this.inner.lockTag(name, owner, ttlSeconds));
  }

  unlockTag(name: string, owner: string): Promise<void> {
    return this.run('unlockTag', { tag: name }, () => this.inner.unlockTag(name, owner));
  }

  tagLocked(name: string): Promise<string | null> {
    return this.run('tagLocked', { tag: name }, () => this.inner.tagLocked(name));
  }

  flush(): Promise<void> {
    return this.run('flush', {}, () => this.inner.flush());
  }

  stats(): Promise<BackendStats> {
    return this.run('stats', {}, () => this.inner.stats());
  }

  admin(command: string, args: string[]): Promise<AdminResult> {
    this.open();
    return runProxyAdmin('faulty', this.adminTable, this.inner, command, args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.inner.close();
    } finally {
      this.writeLog({ event: 'close' });
      if (this.logFd !== null) closeSync(this.logFd);
      this.logFd = null;
    }
  }

  /**
   * One counted operation, through the schedule: kill, delay, fail before,
   * drop (for writes: `validate` first, so a dropped write is still refused
   * when the inner archive would refuse it), forward, fail after.
   */
  private async run<T>(op: FaultOp, detail: Detail, forward: (faults: string[]) => Promise<T>, validate?: () => void): Promise<T> {
    this.open();
    this.total += 1;
    const nth = (this.perOp.get(op) ?? 0) + 1;
    this.perOp.set(op, nth);
    const n = this.total;
    const started = performance.now();
    const faults: string[] = [];
    const line = (result: Record<string, unknown>): void => {
      this.writeLog({ n, op, ...detail, ...result, ms: Math.round((performance.now() - started) * 10) / 10, ...(faults.length > 0 ? { faults } : {}) });
    };
    const kill = this.schedule.killAfter;
    if (kill !== null && (kill.op === null ? n : kill.op === op ? nth : 0) > kill.count) {
      line({ result: 'killed' });
      (this.options.kill ?? (() => process.kill(process.pid, 'SIGKILL')))();
      throw new BackendError('unavailable', `injected fault: killed before operation ${n} (${op})`);
    }
    try {
      const delay = this.schedule.delays.reduce((sum, d) => sum + (d.op === null || d.op === op ? d.ms : 0), 0);
      if (delay > 0) {
        faults.push(`delay ${delay}`);
        this.injected.delayed += 1;
        await sleep(delay);
      }
      const before = this.failure(op, n, nth, false);
      if (before !== null) throw this.inject(faults, before, n, op);
      if (validate !== undefined && this.drops(op)) {
        validate();
        faults.push('dropped');
        this.injected.dropped += 1;
        line({ result: 'ok' });
        return undefined as T;
      }
      const result = await forward(faults);
      const after = this.failure(op, n, nth, true);
      if (after !== null) throw this.inject(faults, after, n, op);
      line({ result: 'ok' });
      return result;
    } catch (err) {
      line({ result: 'error', code: toBackendError(err).code });
      throw err;
    }
  }

  /** The scheduled failure of this operation, if any. */
  private failure(op: FaultOp, n: number, nth: number, after: boolean): FailSpec | null {
    const count = (spec: FailSpec): number => (spec.op === null ? n : spec.op === op ? nth : 0);
    const exact = this.schedule.failOps.find((s) => s.after === after && count(s) === s.nth);
    if (exact !== undefined) return exact;
    if (after) return null;
    return this.schedule.failFrom.find((s) => count(s) >= s.nth) ?? null;
  }

  private inject(faults: string[], spec: FailSpec, n: number, op: FaultOp): BackendError {
    faults.push(`fail ${spec.code}${spec.after ? ' after' : ''}`);
    this.injected.failed += 1;
    const what = spec.after ? ' (the inner archive did it; the answer is lost)' : '';
    return new BackendError(spec.code, `injected fault: operation ${n} (${op}) fails with ${spec.code}${what}`);
  }

  /** Whether to drop this write; every droppable write draws once, so a seed gives the same drops. */
  private drops(op: FaultOp): boolean {
    let dropped = false;
    for (const spec of this.schedule.dropWrites) {
      if (spec.op === op && this.dropRandom.next() < spec.fraction) dropped = true;
    }
    return dropped;
  }

  /** Flips one byte (chosen by the seeded generator) when scheduled or drawn at --corrupt-rate. */
  private maybeCorrupt(data: Uint8Array, scheduled: boolean, faults: string[]): Uint8Array {
    const drawn = this.schedule.corruptRate > 0 && this.corruptRandom.next() < this.schedule.corruptRate;
    if (!scheduled && !drawn) return data;
    const copy = new Uint8Array(data);
    const at = Math.floor(this.corruptRandom.next() * copy.byteLength);
    copy[at] = (copy[at] as number) ^ 0xff;
    this.injected.corrupted += 1;
    faults.push(`corrupted byte ${at}`);
    return copy;
  }

  private writeLog(record: Record<string, unknown>): void {
    if (this.logFd === null) return;
    // Written synchronously, so that the lines before a SIGKILL are on disk.
    writeSync(this.logFd, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }

  private describe(): Promise<AdminResult> {
    return proxyInfo({
      backend: 'faulty',
      seed: this.schedule.seed,
      faults: scheduleAsOptions(this.schedule).join(' ') || '(none)',
      log: this.schedule.logFile ?? '(none)',
      operations: this.total,
      failed: this.injected.failed,
      dropped: this.injected.dropped,
      corrupted: this.injected.corrupted,
      delayed: this.injected.delayed,
    }, this.inner);
  }

  private open(): void {
    if (this.closed) throw new BackendError('unavailable', 'the faulty archive is closed');
  }
}
