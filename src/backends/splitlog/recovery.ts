/**
 * Bringing the index up to date with the logs. Both functions run while the
 * caller holds the writer lock, inside one IMMEDIATE transaction, so a crash
 * at any point leaves the previous index in place (crash-safe, in place).
 *
 * - `recoverTail` (start-up, and whenever a process becomes the writer):
 *   indexes the complete, valid records after the indexed position and cuts
 *   a torn or corrupt tail off, saying how many bytes were dropped.
 * - `reindex`: forgets the index and rebuilds it from every log.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, statSync } from 'node:fs';
import type { IndexOp, Metadata, Position } from './metadata.js';
import { listLogs, logName, logPath } from './log-files.js';
import { scanLog, type BadStretch, type ScannedRecord } from './log-scanner.js';
import { describeType, RecordType } from './record.js';
import { isValidKey } from '../names.js';

export function toOp(record: ScannedRecord): IndexOp {
  const op: IndexOp = { type: record.header.type, name: record.name, loc: record.loc };
  if (record.header.type === RecordType.Config) op.value = record.data.toString('utf8');
  return op;
}

function cut(file: string, size: number): void {
  const fd = openSync(file, 'r+');
  try {
    ftruncateSync(fd, size);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Records applied in batches (Metadata.applyAll), in the order they were scanned: `add` each, then `flush`. */
const APPLY_BATCH = 4096;

function batchedApply(meta: Metadata): { add(op: IndexOp): void; flush(): void } {
  let ops: IndexOp[] = [];
  const flush = (): void => {
    if (ops.length > 0) meta.applyAll(ops);
    ops = [];
  };
  return {
    add(op) {
      ops.push(op);
      if (ops.length >= APPLY_BATCH) flush();
    },
    flush,
  };
}

function sizeOf(file: string): number | null {
  try {
    return statSync(file).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function describeStretch(log: number, stretch: BadStretch): string {
  const what = stretch.claimed === undefined ? '' : ` (${describeType(stretch.claimed.type)} ${JSON.stringify(stretch.claimed.name)})`;
  return `${logName(log)} offset ${stretch.offset}${what}: ${stretch.reason}`;
}

export interface RecoveryResult {
  /** Where the next record goes. */
  append: Position;
  /** Records newly indexed. */
  indexed: number;
}

export function recoverTail(meta: Metadata, dir: string, warn: (text: string) => void): RecoveryResult {
  const start = meta.position();
  const logs = listLogs(dir).filter((log) => log >= start.log);
  let position = start;
  let indexed = 0;
  let appendAfter = false;
  meta.immediate(() => {
    for (const log of logs) {
      const file = logPath(dir, log);
      const from = log === start.log ? start.offset : 0;
      const size = sizeOf(file) ?? 0;
      if (size < from) {
        warn(`${logName(log)} holds ${size} bytes but the metadata indexes it up to byte ${from}: it was cut from outside; new records go to a new log (run check)`);
        appendAfter = true;
        continue;
      }
      appendAfter = false;
      const batch = batchedApply(meta);
      const result = scanLog(file, log, from, 'tail', (record) => {
        batch.add(toOp(record));
        indexed += 1;
      });
      batch.flush();
      const tail = result.bad[0];
      if (tail !== undefined) {
        cut(file, result.end);
        warn(`recovery dropped ${result.size - result.end} bytes of torn or corrupt data at the end of ${describeStretch(log, tail)}`);
      }
      position = { log, offset: result.end };
    }
    meta.setPosition(position);
  });
  const last = logs.at(-1);
  if (last === undefined) {
    const size = sizeOf(logPath(dir, start.log));
    // A log the index covers but that is gone is never written again under its number.
    const reuse = size === null && start.offset === 0;
    return { append: { log: reuse ? Math.max(1, start.log) : start.log + 1, offset: 0 }, indexed };
  }
  if (appendAfter) return { append: { log: last + 1, offset: 0 }, indexed };
  return { append: { log: last, offset: sizeOf(logPath(dir, last)) ?? 0 }, indexed };
}

export interface ReindexResult {
  logs: number;
  records: number;
  bytes: number;
  problems: string[];
}

export function reindex(meta: Metadata, dir: string, warn: (text: string) => void): ReindexResult {
  const logs = listLogs(dir);
  const result: ReindexResult = { logs: logs.length, records: 0, bytes: 0, problems: [] };
  meta.immediate(() => {
    meta.clearIndex();
    let position: Position = { log: logs[0] ?? 1, offset: 0 };
    for (const log of logs) {
      const file = logPath(dir, log);
      const batch = batchedApply(meta);
      const scan = scanLog(file, log, 0, 'resync', (record) => {
        batch.add(toOp(record));
        result.records += 1;
      });
      batch.flush();
      result.bytes += scan.size;
      let end = scan.end;
      for (const stretch of scan.bad) {
        const atEnd = stretch.offset + stretch.length === scan.size;
        if (atEnd && log === logs.at(-1) && stretch.offset >= scan.end) {
          cut(file, stretch.offset);
          end = stretch.offset;
          warn(`reindex dropped ${stretch.length} bytes of torn data at the end of ${describeStretch(log, stretch)}`);
          continue;
        }
        const message = `skipped ${stretch.length} bytes at ${describeStretch(log, stretch)}`;
        result.problems.push(message);
        warn(message);
        // A block whose header is intact stays indexed, so `get` answers corrupt rather than nil.
        const claimed = stretch.claimed;
        if (claimed !== undefined && claimed.type === RecordType.BlockPut && isValidKey(claimed.name)
          && claimed.length === stretch.length && stretch.reason === 'checksum mismatch') {
          meta.apply({ type: RecordType.BlockPut, name: claimed.name, loc: { log, offset: stretch.offset, length: claimed.length } });
        }
      }
      position = { log, offset: end };
    }
    meta.setPosition(position);
    meta.deleteMeta('needsReindex');
  });
  return result;
}
