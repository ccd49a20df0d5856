/**
 * `check`: reads every record of every log and verifies it (checksum,
 * format, name), then verifies that every indexed block and tag points at a
 * valid record of the same name. Changes nothing.
 */
import { existsSync } from 'node:fs';
import { listLogs, logName, logPath } from './log-files.js';
import { scanLog } from './log-scanner.js';
import type { IndexedRecord, Metadata } from './metadata.js';
import { RecordType } from './record.js';
import { describeStretch } from './recovery.js';

export interface CheckProblem {
  log: number;
  offset: number;
  /** What the record claims to be, when its header could be read. */
  record?: string;
  message: string;
}

export interface CheckReport {
  logs: number;
  records: number;
  bytes: number;
  problems: CheckProblem[];
}

export function checkLogs(meta: Metadata | null, dir: string): CheckReport {
  const logs = listLogs(dir);
  const report: CheckReport = { logs: logs.length, records: 0, bytes: 0, problems: [] };
  const present = new Set(logs);
  /** Per log, the block records the index points at (counted, not kept: a log holds up to millions). */
  const confirmed = new Map<number, number>();
  for (const log of logs) {
    const starts = new Map<number, string>();
    let blocks = 0;
    const scan = scanLog(logPath(dir, log), log, 0, 'resync', (record) => {
      report.records += 1;
      starts.set(record.loc.offset, `${record.header.type}:${record.name}`);
      if (meta !== null && record.header.type === RecordType.BlockPut) {
        const loc = meta.lookup('block', record.name);
        if (loc !== null && loc.log === log && loc.offset === record.loc.offset) blocks += 1;
      }
    });
    confirmed.set(log, blocks);
    report.bytes += scan.size;
    for (const stretch of scan.bad) {
      const problem: CheckProblem = { log, offset: stretch.offset, message: `${describeStretch(log, stretch)} (${stretch.length} bytes unreadable)` };
      if (stretch.claimed !== undefined) problem.record = stretch.claimed.name;
      report.problems.push(problem);
    }
    if (meta === null) continue;
    for (const row of meta.tagsIn(log)) {
      if (starts.get(row.loc.offset) !== `${RecordType.TagSet}:${row.name}`) report.problems.push(misplaced(row));
    }
  }
  if (meta !== null) {
    // Every indexed block of a log was confirmed above, unless the counts differ:
    // only then are that log's index rows read one by one.
    const suspect = new Set<number>();
    for (const [log, indexed] of meta.blocksPerLog()) {
      if (present.has(log) && indexed !== confirmed.get(log)) suspect.add(log);
    }
    for (const [log, rows] of meta.valuesIn(suspect)) {
      const starts = new Map<number, string>();
      scanLog(logPath(dir, log), log, 0, 'resync', (record) => starts.set(record.loc.offset, `${record.header.type}:${record.name}`));
      for (const row of rows) {
        if (row.kind === 'block' && starts.get(row.loc.offset) !== `${RecordType.BlockPut}:${row.name}`) report.problems.push(misplaced(row));
      }
    }
    for (const usage of meta.logUsage()) {
      if (!present.has(usage.log) && usage.live > 0 && !existsSync(logPath(dir, usage.log))) {
        report.problems.push({ log: usage.log, offset: 0, message: `${logName(usage.log)} is indexed (${usage.live} live bytes) but does not exist` });
      }
    }
  }
  return report;
}

function misplaced(row: IndexedRecord): CheckProblem {
  const { log, offset } = row.loc;
  return {
    log, offset, record: row.name,
    message: `${row.kind} ${JSON.stringify(row.name)} is indexed at ${logName(log)} offset ${offset}, where there is no valid record of it`,
  };
}
