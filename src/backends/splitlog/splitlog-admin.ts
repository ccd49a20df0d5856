/**
 * The splitlog admin commands (issue 3). While the store is degraded
 * (metadata missing or unusable) only DEGRADED_COMMANDS work.
 */
import { statSync } from 'node:fs';
import type { AdminResult } from '../backend.js';
import { expectArgs, formatFields, parseCount, type AdminTable } from '../admin-commands.js';
import { BackendError } from '../errors.js';
import { UsageError } from '../factory.js';
import { parseByteSize } from '../units.js';
import { checkLogs } from './check.js';
import { compactLogs } from './compact.js';
import { listLogs, logName, logPath } from './log-files.js';
import { RecordType } from './record.js';
import { reindex } from './recovery.js';
import { checkBlockSizeSetting, checkCommitInterval, checkLogfileSize, type SettingName } from './settings.js';
import type { SplitlogBackend } from './splitlog-backend.js';
import { currentWriter, describeHolder } from './writer-lock.js';

export const DEGRADED_COMMANDS = ['help', 'info', 'check', 'reindex'];

function byteArg(text: string | undefined, what: string, usage: string): number {
  if (text === undefined) throw new BackendError('badRequest', `usage: ${usage}`);
  try {
    return parseByteSize(text, what);
  } catch (err) {
    if (err instanceof UsageError) throw new BackendError('badRequest', err.message);
    throw err;
  }
}

async function setSetting(b: SplitlogBackend, name: SettingName, value: string, text: string): Promise<AdminResult> {
  await b.writer.append(RecordType.Config, name, Buffer.from(value, 'utf8'), { value, force: true });
  await b.writer.commit();
  b.reloadSettings();
  return { text, data: { [name]: value } };
}

function info(b: SplitlogBackend): AdminResult {
  const data: Record<string, unknown> = {
    backend: 'splitlog',
    logDirectory: b.config.logDir,
    metadata: b.config.metaFile,
  };
  if (b.degraded !== null) {
    data.state = 'degraded';
    data.problem = b.degradedMessage();
    data.logs = listLogs(b.config.logDir).length;
    return { text: formatFields(data), data };
  }
  const explicit = b.config.maxLogfileBytes !== null;
  Object.assign(data, {
    state: 'ok',
    blockSize: b.settings.blockSize,
    maxLogfileSize: b.maxLogfileBytes(),
    maxLogfileSizeFrom: explicit ? 'identifier' : b.settings.maxLogfileSize !== null ? 'setting' : 'default',
    commitInterval: b.settings.commitInterval,
    writeProtected: b.settings.writeProtected,
    writable: b.info().writable,
    indexedUpTo: (() => {
      const pos = b.meta.position();
      return `${logName(pos.log)} offset ${pos.offset}`;
    })(),
    writer: (() => {
      const holder = currentWriter(b.meta);
      return holder === null ? 'none' : describeHolder(holder);
    })(),
  });
  return { text: formatFields(data), data };
}

function stats(b: SplitlogBackend): AdminResult {
  const { blocks, bytes } = b.meta.blockStats();
  const usage = new Map(b.meta.logUsage().map((u) => [u.log, u.live]));
  const logs = listLogs(b.logDir).map((log) => {
    const size = statSync(logPath(b.logDir, log)).size;
    const live = Math.min(size, usage.get(log) ?? 0);
    return { log: logName(log), bytes: size, live, dead: size - live };
  });
  const total = logs.reduce((sum, l) => sum + l.bytes, 0);
  const live = logs.reduce((sum, l) => sum + l.live, 0);
  const data = { blocks, bytes, tags: b.meta.tagNames().length, logs: logs.length, logBytes: total, liveBytes: live, deadBytes: total - live, perLog: logs };
  const head = formatFields({ blocks: data.blocks, bytes: data.bytes, tags: data.tags, logs: data.logs, 'log bytes': total, 'live bytes': live, 'dead bytes': total - live });
  const rows = logs.map((l) => `  ${l.log}  ${String(l.bytes).padStart(12)}  ${String(l.live).padStart(12)}  ${String(l.dead).padStart(12)}`);
  const table = rows.length === 0 ? '' : `\n  ${'log'.padEnd(10)}  ${'bytes'.padStart(12)}  ${'live'.padStart(12)}  ${'dead'.padStart(12)}\n${rows.join('\n')}`;
  return { text: head + table, data };
}

async function runReindex(b: SplitlogBackend): Promise<AdminResult> {
  const warn = (text: string): void => b.log('warning', text);
  const wasDegraded = b.degraded;
  if (wasDegraded !== null) b.attach(b.openForReindex());
  let result;
  try {
    result = await b.writer.exclusive(() => reindex(b.meta, b.logDir, warn));
  } catch (err) {
    if (wasDegraded !== null) b.detach(wasDegraded);
    throw err;
  }
  b.reloadSettings();
  const lines = [
    `reindexed ${result.records} records from ${result.logs} logs (${result.bytes} bytes)`,
    ...result.problems.map((p) => `problem: ${p}`),
  ];
  if (wasDegraded !== null) lines.push('the metadata is rebuilt; reopen the archive to write to it');
  return { text: lines.join('\n'), data: result };
}

async function runCompact(b: SplitlogBackend, args: string[]): Promise<AdminResult> {
  if (args.length > 1) throw new BackendError('badRequest', 'usage: compact [MIN-DEAD-PERCENT]');
  const percent = args[0] === undefined ? 20 : parseCount(args[0], 'MIN-DEAD-PERCENT');
  if (percent > 100) throw new BackendError('badRequest', 'MIN-DEAD-PERCENT is at most 100');
  if (!b.info().writable) throw new BackendError('readOnly', `the splitlog ${b.logDir} is not writable`);
  const warn = (text: string): void => b.log('warning', text);
  const result = await b.writer.exclusive(() => compactLogs(b.meta, b.logDir, percent, () => b.maxLogfileBytes(), warn));
  for (const log of result.compacted) await b.reader.forget(log);
  const text = result.compacted.length === 0 && result.kept.length === 0
    ? `nothing to compact (no log other than the newest has ${percent}% or more dead bytes)`
    : [
      `compacted ${result.compacted.length} logs${result.compacted.length > 0 ? ` (${result.compacted.map(logName).join(', ')})` : ''}: copied ${result.copiedBytes} live bytes, freed ${result.freedBytes} bytes`,
      ...result.kept.map((k) => `kept ${k}`),
    ].join('\n');
  return { text, data: result };
}

function runCheck(b: SplitlogBackend): AdminResult {
  const report = checkLogs(b.degraded === null ? b.meta : null, b.logDir);
  const lines = [`checked ${report.records} records in ${report.logs} logs (${report.bytes} bytes): ${report.problems.length === 0 ? 'no problems' : `${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}`}`];
  for (const problem of report.problems) lines.push(`  ${problem.message}`);
  return { text: lines.join('\n'), data: { ...report, ok: report.problems.length === 0 } };
}

export function splitlogAdminTable(b: SplitlogBackend): AdminTable {
  return {
    info: { usage: 'info', summary: 'describe this store: paths, settings, state, writer', run: () => info(b) },
    stats: { usage: 'stats', summary: 'blocks, bytes, logs, and live and dead bytes per log', run: () => stats(b) },
    'set-block-size': {
      usage: 'set-block-size N', summary: 'largest block accepted (e.g. 1M); for new connections',
      run: (args) => {
        expectArgs(args, 1, 'set-block-size N');
        const n = checkBlockSizeSetting(byteArg(args[0], 'block size', 'set-block-size N'));
        return setSetting(b, 'blockSize', String(n), `block size set to ${n} bytes (announced to new connections)`);
      },
    },
    'set-max-logfile-size': {
      usage: 'set-max-logfile-size N', summary: 'size limit of each log file (e.g. 900M)',
      run: (args) => {
        expectArgs(args, 1, 'set-max-logfile-size N');
        const n = checkLogfileSize(byteArg(args[0], 'log size limit', 'set-max-logfile-size N'));
        const note = b.config.maxLogfileBytes !== null ? `; this identifier's MAX-LOGFILE-BYTES (${b.config.maxLogfileBytes}) overrides it` : '';
        return setSetting(b, 'maxLogfileSize', String(n), `log size limit set to ${n} bytes${note}`);
      },
    },
    'set-commit-interval': {
      usage: 'set-commit-interval SECONDS', summary: 'how often written records are committed to the metadata',
      run: (args) => {
        expectArgs(args, 1, 'set-commit-interval SECONDS');
        const n = checkCommitInterval(parseCount(args[0], 'SECONDS'));
        return setSetting(b, 'commitInterval', String(n), `commit interval set to ${n} s`);
      },
    },
    'write-protect': {
      usage: 'write-protect', summary: 'refuse every write until write-unprotect',
      run: (args) => {
        expectArgs(args, 0, 'write-protect');
        return setSetting(b, 'writeProtected', '1', 'write-protected: writes are refused (new connections announce writable: false)');
      },
    },
    'write-unprotect': {
      usage: 'write-unprotect', summary: 'accept writes again',
      run: (args) => {
        expectArgs(args, 0, 'write-unprotect');
        return setSetting(b, 'writeProtected', '0', 'write protection lifted');
      },
    },
    reindex: {
      usage: 'reindex', summary: 'rebuild the metadata from the logs (in place, crash-safe)',
      run: (args) => {
        expectArgs(args, 0, 'reindex');
        return runReindex(b);
      },
    },
    compact: {
      usage: 'compact [MIN-DEAD-PERCENT]', summary: 'rewrite the live records of logs with at least MIN-DEAD-PERCENT (default 20) dead bytes, then delete them',
      run: (args) => runCompact(b, args),
    },
    check: {
      usage: 'check', summary: 'read every record, verify checksums and the index, report problems (changes nothing)',
      run: (args) => {
        expectArgs(args, 0, 'check');
        return runCheck(b);
      },
    },
  };
}
