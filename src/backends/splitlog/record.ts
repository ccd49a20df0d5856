/**
 * The splitlog record format. Every record is self-describing, so the logs
 * alone hold the complete state (design.md, "splitlog"):
 *
 *     offset  size  field
 *     0       4     magic 0xCA 0x1E 0x5C 0x01
 *     4       1     type (RecordType)
 *     5       1     name length N (1..128)
 *     6       2     reserved, zero
 *     8       4     data length D (unsigned, big-endian)
 *     12      4     CRC-32C of the whole record with this field read as zero
 *     16      N     name: block key, tag name or setting name (ASCII)
 *     16+N    D     data: block bytes, tag value, setting value (UTF-8); empty for removals
 *
 * A record is HEADER_SIZE + N + D bytes.
 */
import { crc32c } from './crc32c.js';

export const MAGIC = Buffer.from([0xca, 0x1e, 0x5c, 0x01]);
export const HEADER_SIZE = 16;
export const MAX_NAME_LENGTH = 128;
/** Largest data a record may carry: a block or tag value fits in one 64 MiB protocol frame. */
export const MAX_DATA_LENGTH = 64 * 1024 * 1024;

export enum RecordType {
  BlockPut = 1,
  TagSet = 2,
  TagRemoved = 3,
  BlockRemoved = 4,
  Config = 5,
}

/** What a record's name space is: blocks, tags or settings. */
export type Kind = 'block' | 'tag' | 'config';

export function kindOf(type: RecordType): Kind {
  switch (type) {
    case RecordType.BlockPut:
    case RecordType.BlockRemoved:
      return 'block';
    case RecordType.TagSet:
    case RecordType.TagRemoved:
      return 'tag';
    case RecordType.Config:
      return 'config';
  }
}

export function isRemoval(type: RecordType): boolean {
  return type === RecordType.BlockRemoved || type === RecordType.TagRemoved;
}

export function describeType(type: RecordType): string {
  return ['?', 'block', 'tag', 'tag removal', 'block removal', 'setting'][type] ?? `type ${type}`;
}

/** The parsed fixed part of a record. */
export interface RecordHeader {
  type: RecordType;
  nameLength: number;
  dataLength: number;
  crc: number;
  /** The whole record's length. */
  length: number;
}

export function recordLength(nameLength: number, dataLength: number): number {
  return HEADER_SIZE + nameLength + dataLength;
}

/** Encodes a record's header and name; the data follows it unchanged (no copy of block bytes). */
export function encodeRecord(type: RecordType, name: string, data: Uint8Array): Buffer {
  const nameBytes = Buffer.from(name, 'latin1');
  const head = Buffer.alloc(HEADER_SIZE + nameBytes.length);
  MAGIC.copy(head, 0);
  head[4] = type;
  head[5] = nameBytes.length;
  head.writeUInt32BE(data.byteLength, 8);
  nameBytes.copy(head, HEADER_SIZE);
  head.writeUInt32BE(crc32c(data, crc32c(head)), 12);
  return head;
}

/** Parses a header; null when it cannot be the start of a record (bad magic, type or lengths). */
export function parseHeader(buf: Uint8Array, at = 0): RecordHeader | null {
  if (buf.length - at < HEADER_SIZE) return null;
  for (let i = 0; i < 4; i += 1) if (buf[at + i] !== MAGIC[i]) return null;
  const type = buf[at + 4] as number;
  const nameLength = buf[at + 5] as number;
  if (type < RecordType.BlockPut || type > RecordType.Config) return null;
  if (nameLength < 1 || nameLength > MAX_NAME_LENGTH || buf[at + 6] !== 0 || buf[at + 7] !== 0) return null;
  const view = Buffer.from(buf.buffer, buf.byteOffset + at, HEADER_SIZE);
  const dataLength = view.readUInt32BE(8);
  // Nothing larger ever arrives in one frame: a bigger length is damage, not a record.
  if (dataLength > MAX_DATA_LENGTH) return null;
  return { type, nameLength, dataLength, crc: view.readUInt32BE(12), length: recordLength(nameLength, dataLength) };
}

/** The checksum a whole record (header, name, data) should carry. */
export function computeCrc(record: Uint8Array): number {
  const head = Buffer.from(record.subarray(0, HEADER_SIZE));
  head.writeUInt32BE(0, 12);
  return crc32c(record.subarray(HEADER_SIZE), crc32c(head));
}

/** A whole record, checked. */
export interface DecodedRecord {
  header: RecordHeader;
  name: string;
  data: Buffer;
}

/**
 * Checks and decodes a whole record held in `buf` at `at`. Returns a reason
 * string when it is not a valid record.
 */
export function decodeRecord(buf: Buffer, at = 0): DecodedRecord | string {
  const header = parseHeader(buf, at);
  if (header === null) return 'not a record header';
  if (buf.length - at < header.length) return 'record is cut short';
  const record = buf.subarray(at, at + header.length);
  if (computeCrc(record) !== header.crc) return 'checksum mismatch';
  const name = record.toString('latin1', HEADER_SIZE, HEADER_SIZE + header.nameLength);
  return { header, name, data: record.subarray(HEADER_SIZE + header.nameLength) };
}
