/**
 * Splitlog settings. They live in the logs as config records (so that a
 * reindex keeps them) and, indexed, in the metadata's config table.
 */
import { BackendError } from '../errors.js';
import { MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../names.js';

export const DEFAULT_MAX_LOGFILE_BYTES = 900_000_000;
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;
export const DEFAULT_COMMIT_INTERVAL = 5;
/** Smallest log size limit accepted: a few records' worth. */
export const MIN_LOGFILE_BYTES = 4096;

export interface Settings {
  blockSize: number;
  /** The stored log size limit, or null (then the identifier's or the default applies). */
  maxLogfileSize: number | null;
  commitInterval: number;
  writeProtected: boolean;
}

export type SettingName = keyof Settings;

export const SETTING_NAMES: readonly SettingName[] = ['blockSize', 'maxLogfileSize', 'commitInterval', 'writeProtected'];

function intOr(text: string | undefined, fallback: number): number {
  const n = Number(text);
  return text !== undefined && Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

export function settingsFrom(values: Map<string, string>): Settings {
  const max = values.get('maxLogfileSize');
  return {
    blockSize: intOr(values.get('blockSize'), DEFAULT_BLOCK_SIZE),
    maxLogfileSize: max === undefined ? null : intOr(max, DEFAULT_MAX_LOGFILE_BYTES),
    commitInterval: intOr(values.get('commitInterval'), DEFAULT_COMMIT_INTERVAL),
    writeProtected: values.get('writeProtected') === '1',
  };
}

export function checkBlockSizeSetting(n: number): number {
  if (n < MIN_BLOCK_SIZE || n > MAX_BLOCK_SIZE) {
    throw new BackendError('badRequest', `block size must be from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE} bytes`);
  }
  return n;
}

export function checkLogfileSize(n: number): number {
  if (n < MIN_LOGFILE_BYTES) throw new BackendError('badRequest', `the log size limit must be at least ${MIN_LOGFILE_BYTES} bytes`);
  return n;
}

export function checkCommitInterval(n: number): number {
  if (n < 1 || n > 3600) throw new BackendError('badRequest', 'the commit interval must be from 1 to 3600 seconds');
  return n;
}
