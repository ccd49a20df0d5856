/**
 * Reads the records of one log from an offset, synchronously (start-up
 * recovery, reindex, check and compaction are whole-archive operations that
 * run alone). Two modes: `tail` stops at the first invalid byte (recovery:
 * everything after it is a torn or corrupt tail); `resync` reports the bad
 * stretch and carries on at the next valid record (check, reindex).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isValidKey, isValidTagName } from '../names.js';
import { decodeRecord, HEADER_SIZE, kindOf, MAGIC, parseHeader, type DecodedRecord } from './record.js';
import type { Location } from './metadata.js';

const CHUNK = 8 * 1024 * 1024;

export interface ScannedRecord extends DecodedRecord {
  loc: Location;
}

/** A stretch of a log that holds no valid record. */
export interface BadStretch {
  offset: number;
  /** Bytes skipped (to the next valid record or the end). */
  length: number;
  reason: string;
  /** What the header said, when it could be read: type and name. */
  claimed?: { type: number; name: string; length: number };
}

export interface ScanResult {
  /** File size when scanned. */
  size: number;
  /** End of the last valid record (tail mode: where the valid prefix ends). */
  end: number;
  bad: BadStretch[];
}

function nameIsValid(record: DecodedRecord): boolean {
  const kind = kindOf(record.header.type);
  return kind === 'block' ? isValidKey(record.name) : isValidTagName(record.name);
}

class ChunkReader {
  private buf = Buffer.alloc(0);
  private start = 0;

  constructor(private readonly fd: number, readonly size: number) {}

  /** `length` bytes at `offset` (fewer at the end of the file). */
  get(offset: number, length: number): Buffer {
    const want = Math.min(length, this.size - offset);
    if (offset >= this.start && offset + want <= this.start + this.buf.length) {
      return this.buf.subarray(offset - this.start, offset - this.start + want);
    }
    const size = Math.max(want, Math.min(CHUNK, this.size - offset));
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(this.fd, buf, done, size - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    this.buf = buf.subarray(0, done);
    this.start = offset;
    return this.buf.subarray(0, Math.min(want, done));
  }
}

function check(reader: ChunkReader, offset: number, log: number): ScannedRecord | BadStretch {
  const head = reader.get(offset, HEADER_SIZE);
  const header = parseHeader(head);
  if (header === null) {
    return { offset, length: 0, reason: head.length < HEADER_SIZE ? 'torn record header' : 'not a record header' };
  }
  const claimedName = reader.get(offset + HEADER_SIZE, header.nameLength).toString('latin1');
  const claimed = { type: header.type, name: claimedName, length: header.length };
  if (offset + header.length > reader.size) return { offset, length: 0, reason: 'record is cut short', claimed };
  const decoded = decodeRecord(reader.get(offset, header.length));
  if (typeof decoded === 'string') return { offset, length: 0, reason: decoded, claimed };
  if (!nameIsValid(decoded)) return { offset, length: 0, reason: 'invalid name in record', claimed };
  return { ...decoded, loc: { log, offset, length: header.length } };
}

/** Where the next valid record starts after `from`, or the file size. */
function findNext(reader: ChunkReader, from: number, log: number): number {
  for (let at = from; at + HEADER_SIZE <= reader.size;) {
    const window = reader.get(at, Math.min(CHUNK, reader.size - at));
    const hit = window.indexOf(MAGIC);
    if (hit < 0) {
      at += Math.max(1, window.length - MAGIC.length + 1);
      continue;
    }
    const candidate = at + hit;
    if (!('reason' in check(reader, candidate, log))) return candidate;
    at = candidate + 1;
  }
  return reader.size;
}

export function scanLog(
  file: string,
  log: number,
  from: number,
  mode: 'tail' | 'resync',
  onRecord: (record: ScannedRecord) => void,
): ScanResult {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const reader = new ChunkReader(fd, size);
    const bad: BadStretch[] = [];
    let pos = from;
    let end = from;
    while (pos < size) {
      const result = check(reader, pos, log);
      if ('reason' in result) {
        if (mode === 'tail') {
          bad.push({ ...result, length: size - pos });
          break;
        }
        const next = findNext(reader, pos + 1, log);
        bad.push({ ...result, length: next - pos });
        pos = next;
        continue;
      }
      onRecord(result);
      pos += result.loc.length;
      end = pos;
    }
    return { size, end, bad };
  } finally {
    closeSync(fd);
  }
}
