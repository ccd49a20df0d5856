import { BackendError } from '../backends/errors.js';
import { decodeRef, encodeRef, type ContentRef } from './content-ref.js';

/**
 * A directory entry (docs/format.md, "Directories"). Names and symlink
 * targets are raw bytes: a file system name need not be UTF-8. Times are
 * [seconds, nanoseconds].
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'char' | 'block';
const TYPE_CODES: Record<EntryType, number> = { file: 1, dir: 2, symlink: 3, hardlink: 4, fifo: 5, char: 6, block: 7 };
const TYPES_BY_CODE = new Map<number, EntryType>(Object.entries(TYPE_CODES).map(([k, v]) => [v, k as EntryType]));

export type Time = [seconds: number, nanoseconds: number];

export interface Entry {
  name: Buffer;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  mtime: Time;
  atime?: Time;
  size: number;
  /** file and hardlink: the data (null when empty); dir: the directory. */
  content?: ContentRef | null;
  /** symlink: the target, raw. */
  target?: Buffer;
  /** hardlink: the path, from the snapshot root, of the entry it is a link to. */
  link?: Buffer[];
  /** char and block devices. */
  rdev?: number;
  /** Extended attributes, sorted by name. */
  xattrs?: Array<[Buffer, Buffer]>;
}

export function encodeEntry(e: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = { n: e.name, t: TYPE_CODES[e.type], m: e.mode, u: e.uid, g: e.gid };
  if (e.user !== undefined) out.U = e.user;
  if (e.group !== undefined) out.G = e.group;
  out.mt = e.mtime;
  if (e.atime !== undefined) out.at = e.atime;
  out.s = e.size;
  if (e.content !== undefined) out.c = e.content === null ? null : encodeRef(e.content);
  if (e.target !== undefined) out.L = e.target;
  if (e.link !== undefined) out.h = e.link;
  if (e.rdev !== undefined) out.r = e.rdev;
  if (e.xattrs !== undefined && e.xattrs.length > 0) out.x = e.xattrs;
  return out;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isTime = (v: unknown): v is Time => Array.isArray(v) && v.length === 2 && isInt(v[0]) && isInt(v[1]);
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

/**
 * A name cairn will ever create: not empty, not `.` or `..`, no `/` and no
 * NUL (issue 7: a hostile archive must not make extract write outside DEST).
 */
export function isSafeName(name: Uint8Array): boolean {
  if (name.length === 0 || name.length > 4096) return false;
  if (name.length === 1 && name[0] === 0x2e) return false;
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return false;
  return !name.includes(0x2f) && !name.includes(0);
}

export function decodeEntry(value: unknown, what: string): Entry {
  if (typeof value !== 'object' || value === null) throw new BackendError('corrupt', `${what}: malformed entry`);
  const r = value as Record<string, unknown>;
  const type = TYPES_BY_CODE.get(r.t as number);
  if (!isBytes(r.n) || type === undefined || !isInt(r.m) || !isInt(r.u) || !isInt(r.g) || !isTime(r.mt) || !isInt(r.s) || r.s < 0) {
    throw new BackendError('corrupt', `${what}: malformed entry`);
  }
  const name = Buffer.from(r.n);
  if (!isSafeName(name)) {
    throw new BackendError('corrupt', `${what}: refusing entry name ${JSON.stringify(name.toString('latin1'))} (empty, '.', '..', or containing '/' or NUL)`);
  }
  const e: Entry = { name, type, mode: r.m, uid: r.u, gid: r.g, mtime: r.mt, size: r.s };
  if (typeof r.U === 'string') e.user = r.U;
  if (typeof r.G === 'string') e.group = r.G;
  if (isTime(r.at)) e.atime = r.at;
  if (r.c !== undefined) e.content = r.c === null ? null : decodeRef(r.c, what);
  if (isBytes(r.L)) e.target = Buffer.from(r.L);
  if (Array.isArray(r.h)) {
    if (!r.h.every((c) => isBytes(c) && isSafeName(c))) throw new BackendError('corrupt', `${what}: refusing a hard link with an unsafe path`);
    e.link = r.h.map((c) => Buffer.from(c as Uint8Array));
  }
  if (isInt(r.r)) e.rdev = r.r;
  if (Array.isArray(r.x)) {
    e.xattrs = r.x.filter((p): p is [Uint8Array, Uint8Array] => Array.isArray(p) && isBytes(p[0]) && isBytes(p[1]))
      .map(([k, v]) => [Buffer.from(k), Buffer.from(v)]);
  }
  if ((type === 'file' || type === 'dir') && e.content === undefined) throw new BackendError('corrupt', `${what}: ${type} without content`);
  if (type === 'dir' && e.content === null) throw new BackendError('corrupt', `${what}: directory without content`);
  if (type === 'symlink' && e.target === undefined) throw new BackendError('corrupt', `${what}: symlink without target`);
  if (type === 'hardlink' && (e.link === undefined || e.link.length === 0)) throw new BackendError('corrupt', `${what}: hard link without a path`);
  return e;
}

/** Text for a name: UTF-8 when it is, else with the odd bytes escaped as \xNN. */
export function displayName(name: Uint8Array): string {
  const text = Buffer.from(name).toString('utf8');
  if (Buffer.from(text, 'utf8').equals(Buffer.from(name))) return text;
  let out = '';
  for (const byte of name) out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  return out;
}
