/**
 * `check`: reads every record of every log and verifies it (checksum,
 * format, name), then verifies that every indexed block and tag points at a
 * valid record of the same name. Changes nothing.
 */
import { existsSync } from 'node:fs';
import { listLogs, logName, logPath } from './log-files.js';
import { scanLog } from './log-scanner.js';
import type { Metadata } from './metadata.js';
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
  for (const log of logs) {
    const starts = new Map<number, string>();
    const scan = scanLog(logPath(dir, log), log, 0, 'resync', (record) => {
      report.records += 1;
      starts.set(record.loc.offset, `${record.header.type}:${record.name}`);
    });
    report.bytes += scan.size;
    for (const stretch of scan.bad) {
      const problem: CheckProblem = { log, offset: stretch.offset, message: `${describeStretch(log, stretch)} (${stretch.length} bytes unreadable)` };
      if (stretch.claimed !== undefined) problem.record = stretch.claimed.name;
      report.problems.push(problem);
    }
    if (meta === null) continue;
    for (const [kind, type] of [['block', 1], ['tag', 2]] as const) {
      for (const row of meta.s[kind].byLog.all(log)) {
        if (starts.get(row.offset) !== `${type}:${row.name}`) {
          report.problems.push({
            log, offset: row.offset, record: row.name,
            message: `${kind} ${JSON.stringify(row.name)} is indexed at ${logName(log)} offset ${row.offset}, where there is no valid record of it`,
          });
        }
      }
    }
  }
  if (meta !== null) {
    for (const usage of meta.logUsage()) {
      if (!present.has(usage.log) && usage.live > 0 && !existsSync(logPath(dir, usage.log))) {
        report.problems.push({ log: usage.log, offset: 0, message: `${logName(usage.log)} is indexed (${usage.live} live bytes) but does not exist` });
      }
    }
  }
  return report;
}
