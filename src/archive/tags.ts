import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { BackendError } from '../backends/errors.js';
import { checkUserTagName } from '../backends/names.js';
import type { ArchiveKeys } from './keys.js';
import { field, isNumber, isString, pack, unpack } from './pack.js';

/**
 * User tags (docs/format.md, "Tags"): the archive holds `c-` and the hex
 * HMAC-SHA-256 of the name under the tag-name key, never the name; the value
 * is sealed with AES-256-GCM under the tag key, with the stored name as
 * associated data, and holds the real name and the newest snapshot's key.
 */
export const USER_TAG_PREFIX = 'c-';
const TAG_VERSION = 1;

export interface TagValue {
  name: string;
  /** Key of the newest snapshot record, or null for a tag with no snapshot yet. */
  head: string | null;
  /** When the tag was last moved (ms since the epoch). */
  time: number;
}

/** A user tag name as cairn accepts it: a valid, unreserved tag name without `@` (it separates snapshots). */
export function checkCairnTagName(name: string): string {
  checkUserTagName(name);
  if (name.includes('@')) throw new BackendError('badRequest', `tag name ${JSON.stringify(name)} may not contain '@' (it separates a tag from a snapshot)`);
  return name;
}

export function storedTagName(keys: ArchiveKeys, name: string): string {
  return USER_TAG_PREFIX + createHmac('sha256', keys.tagName).update(name, 'utf8').digest('hex');
}

export function sealTag(keys: ArchiveKeys, stored: string, value: TagValue): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keys.tag, nonce);
  cipher.setAAD(Buffer.from(stored, 'latin1'));
  const body = Buffer.concat([cipher.update(pack({ name: value.name, head: value.head, time: value.time })), cipher.final()]);
  return Buffer.concat([Buffer.of(TAG_VERSION), nonce, body, cipher.getAuthTag()]);
}

export function openTag(keys: ArchiveKeys, stored: string, sealed: Uint8Array): TagValue {
  if (sealed.length < 1 + 12 + 16 || sealed[0] !== TAG_VERSION) throw new BackendError('corrupt', `tag ${stored} is damaged (bad header)`);
  const decipher = createDecipheriv('aes-256-gcm', keys.tag, sealed.subarray(1, 13));
  decipher.setAAD(Buffer.from(stored, 'latin1'));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(sealed.subarray(13, sealed.length - 16)), decipher.final()]);
  } catch {
    throw new BackendError('corrupt', `tag ${stored} is damaged or was tampered with (authentication failed)`);
  }
  const what = `tag ${stored}`;
  const record = unpack(plain, what);
  const head = (record as Record<string, unknown>).head;
  if (head !== null && !(typeof head === 'string' && /^[0-9a-f]{64}$/.test(head))) throw new BackendError('corrupt', `${what}: bad head`);
  const value: TagValue = { name: field(record, 'name', isString, what), head, time: field(record, 'time', isNumber, what) };
  if (storedTagName(keys, value.name) !== stored) throw new BackendError('corrupt', `${what} holds the value of another tag`);
  return value;
}
