/**
 * `compact`: gives back the space of removed and replaced records. Live
 * records of sparse logs are copied verbatim to the end of the newest log,
 * the logs are fsynced, the index moves to the copies in one transaction,
 * and only then are the old logs deleted. A crash before the commit leaves
 * copies that the next start-up indexes (the last record wins, and a copy is
 * the same record); a crash after it leaves logs with nothing live that the
 * next compact deletes.
 *
 * A removal record is copied only while a superseded value of the same
 * name survives in a log that stays, so a reindex cannot bring it back.
 */
import { closeSync, openSync, readSync, statSync, unlinkSync } from 'node:fs';
import { LogAppender } from './log-appender.js';
import { listLogs, logName, logPath } from './log-files.js';
import type { IndexedRecord, IndexOp, Location, Metadata } from './metadata.js';
import { decodeRecord, RecordType } from './record.js';
import { recoverTail } from './recovery.js';
import { syncDir } from '../fs/atomic-file.js';

export interface CompactResult {
  compacted: number[];
  kept: string[];
  copiedBytes: number;
  freedBytes: number;
}

/** Reads records of the logs being compacted, one open file per log. */
class VictimReader {
  private readonly fds = new Map<number, number>();

  constructor(private readonly dir: string) {}

  read(loc: Location): Buffer {
    let fd = this.fds.get(loc.log);
    if (fd === undefined) {
      fd = openSync(logPath(this.dir, loc.log), 'r');
      this.fds.set(loc.log, fd);
    }
    const buf = Buffer.alloc(loc.length);
    let done = 0;
    while (done < loc.length) {
      const n = readSync(fd, buf, done, loc.length - done, loc.offset + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** Victim logs whose live records are looked up in one pass over the block table. */
const LOGS_PER_PASS = 16;

export async function compactLogs(
  meta: Metadata, dir: string, minDeadPercent: number, maxBytes: () => number, warn: (text: string) => void,
): Promise<CompactResult> {
  const { append } = recoverTail(meta, dir, warn);
  const live = new Map(meta.logUsage().map((u) => [u.log, u.live]));
  const victims = new Set<number>();
  const sizes = new Map<number, number>();
  for (const log of listLogs(dir)) {
    if (log >= append.log) continue;
    const size = statSync(logPath(dir, log)).size;
    sizes.set(log, size);
    const dead = size - (live.get(log) ?? 0);
    if (size === 0 || dead * 100 >= size * minDeadPercent) victims.add(log);
  }
  const result: CompactResult = { compacted: [], kept: [], copiedBytes: 0, freedBytes: 0 };
  if (victims.size === 0) return result;

  const appender = new LogAppender(dir, append, maxBytes);
  const victimsReader = new VictimReader(dir);
  const ops: IndexOp[] = [];
  const copy = async (entry: IndexedRecord, type: RecordType, record: Buffer, data: Buffer): Promise<void> => {
    const loc = appender.reserve(record.length);
    const op: IndexOp = { type, name: entry.name, loc };
    if (type === RecordType.Config) op.value = data.toString('utf8');
    await appender.write(loc, [record], () => ops.push(op));
    result.copiedBytes += record.length;
  };
  const removals: IndexedRecord[] = [];
  try {
    const order = [...victims];
    let values = new Map<number, IndexedRecord[]>();
    for (const [i, log] of order.entries()) {
      // One pass over the block table finds the values of a group of logs (memory: their live records only).
      if (i % LOGS_PER_PASS === 0) values = meta.valuesIn(new Set(order.slice(i, i + LOGS_PER_PASS)));
      removals.push(...meta.removalsIn(log));
      for (const entry of values.get(log) ?? []) {
        const raw = victimsReader.read(entry.loc);
        const record = decodeRecord(raw);
        if (typeof record === 'string' || record.name !== entry.name) {
          victims.delete(log);
          result.kept.push(`${logName(log)}: the live record ${JSON.stringify(entry.name)} at offset ${entry.loc.offset} is unreadable (${typeof record === 'string' ? record : 'wrong name'}); run check`);
          break;
        }
        await copy(entry, record.header.type, raw, record.data);
      }
    }
    const dropped: IndexedRecord[] = [];
    for (const entry of removals) {
      if (!victims.has(entry.loc.log)) continue;
      const needed = meta.supersededIn(entry.kind, entry.name).some((log) => !victims.has(log));
      if (!needed) {
        dropped.push(entry);
        continue;
      }
      const record = victimsReader.read(entry.loc);
      const decoded = decodeRecord(record);
      if (typeof decoded === 'string') throw new Error(`the removal record of ${entry.name} in ${logName(entry.loc.log)} is unreadable; run check`);
      await copy(entry, decoded.header.type, record, decoded.data);
    }
    await appender.idle();
    await appender.sync();

    meta.immediate(() => {
      meta.applyAll(ops);
      if (ops.length > 0) meta.setPosition(appender.writtenEnd);
      for (const entry of dropped) meta.dropRemoval(entry.kind, entry.name);
      for (const log of victims) meta.forgetLog(log);
      meta.settleRemovals();
    });
  } finally {
    victimsReader.close();
    await appender.close();
  }
  for (const log of victims) {
    unlinkSync(logPath(dir, log));
    result.compacted.push(log);
    result.freedBytes += sizes.get(log) ?? 0;
  }
  await syncDir(dir);
  result.freedBytes -= result.copiedBytes;
  return result;
}
