import { BackendError } from '../backends/errors.js';
import type { Archive } from './archive.js';
import type { BlockWriter } from './block-writer.js';
import type { ContentRef } from './content-ref.js';
import { BlockType } from './format.js';
import { pack, unpack } from './pack.js';
import { decodeEntry, encodeEntry, type Entry } from './tree-entry.js';

/**
 * Directories (docs/format.md, "Directories"): entries sorted by name bytes,
 * encoded deterministically, so an identical subtree gives identical blocks.
 * A directory that outgrows a block is cut into several directory blocks
 * under directory index blocks ([key, entry count] pairs).
 */
export async function writeDirectory(writer: BlockWriter, entries: Entry[], maxPlaintext: number): Promise<ContentRef> {
  const sorted = [...entries].sort((a, b) => Buffer.compare(a.name, b.name));
  const limit = maxPlaintext - 1024;
  // Each entry is encoded once; a group's block is a MessagePack array of them, made by hand (arrayHeader):
  // the same bytes as pack(group), without encoding every entry twice (once to measure it).
  const groups: Buffer[][] = [[]];
  let size = 0;
  for (const entry of sorted) {
    const encoded = pack(encodeEntry(entry));
    if (size + encoded.length > limit && (groups.at(-1) as Buffer[]).length > 0) {
      groups.push([]);
      size = 0;
    }
    (groups.at(-1) as Buffer[]).push(encoded);
    size += encoded.length;
  }
  let refs: Array<[string, number]> = [];
  for (const group of groups) refs.push([await writer.add(BlockType.directory, Buffer.concat([arrayHeader(group.length), ...group])), group.length]);
  let level = 0;
  while (refs.length > 1) {
    const perBlock = Math.max(2, Math.floor(limit / 48));
    const next: Array<[string, number]> = [];
    for (let i = 0; i < refs.length; i += perBlock) {
      const slice = refs.slice(i, i + perBlock);
      const key = await writer.add(BlockType.directoryIndex, pack(slice.map(([k, n]) => [Buffer.from(k, 'hex'), n])));
      next.push([key, slice.reduce((t, [, n]) => t + n, 0)]);
    }
    refs = next;
    level += 1;
  }
  return { level, key: (refs[0] as [string, number])[0] };
}

/** The MessagePack header of an array of `length` items, as msgpackr writes it (fixarray, array 16, array 32). */
export function arrayHeader(length: number): Buffer {
  if (length < 16) return Buffer.from([0x90 | length]);
  if (length < 0x10000) return Buffer.from([0xdc, length >> 8, length & 0xff]);
  const header = Buffer.alloc(5);
  header[0] = 0xdd;
  header.writeUInt32BE(length, 1);
  return header;
}

/** A directory's entries; refuses unsafe names, duplicates and entries out of order (a hostile archive). */
export async function readDirectory(archive: Archive, ref: ContentRef): Promise<Entry[]> {
  const entries = await readLevel(archive, ref);
  for (let i = 1; i < entries.length; i += 1) {
    if (Buffer.compare((entries[i - 1] as Entry).name, (entries[i] as Entry).name) >= 0) {
      throw new BackendError('corrupt', `directory ${ref.key} has entries out of order or twice`);
    }
  }
  return entries;
}

async function readLevel(archive: Archive, ref: ContentRef): Promise<Entry[]> {
  const what = `directory ${ref.key}`;
  if (ref.level === 0) {
    const value = unpack(await archive.readBlock(ref.key, BlockType.directory), what);
    if (!Array.isArray(value)) throw new BackendError('corrupt', `${what} is not a list`);
    return value.map((v) => decodeEntry(v, what));
  }
  const value = unpack(await archive.readBlock(ref.key, BlockType.directoryIndex), what);
  if (!Array.isArray(value)) throw new BackendError('corrupt', `${what} is not a list`);
  const out: Entry[] = [];
  for (const item of value) {
    if (!Array.isArray(item) || !(item[0] instanceof Uint8Array) || item[0].length !== 32) throw new BackendError('corrupt', `${what}: malformed index entry`);
    out.push(...(await readLevel(archive, { level: ref.level - 1, key: Buffer.from(item[0]).toString('hex') })));
  }
  return out;
}
