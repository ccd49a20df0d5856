import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { BackendError } from '../backends/errors.js';
import { field, isBytes, isNumber, isString, pack, unpack } from './pack.js';

/**
 * Keys (docs/format.md, "Keys"): a random 64-byte master key, wrapped under a
 * passphrase stretched with scrypt and stored in the reserved tag
 * `#cairn-key`. Every working key is derived from the master key with HKDF,
 * one per purpose, so no key serves two roles.
 */
export interface ArchiveKeys {
  /** AES-256-GCM key sealing blocks. */
  block: Buffer;
  /** HMAC-SHA-256 key naming blocks (type + plaintext). */
  blockHash: Buffer;
  /** AES-256-GCM key sealing tag values. */
  tag: Buffer;
  /** HMAC-SHA-256 key hashing user tag names. */
  tagName: Buffer;
  /** Seeds the chunker's gear table, so chunk boundaries reveal nothing about known content. */
  chunker: Buffer;
  /** A public fingerprint of the archive key (names file-cache rows; reveals nothing). */
  fingerprint: string;
}

export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/** scrypt with 64 MiB of memory: about a fifth of a second on a laptop. */
export const DEFAULT_KDF: KdfParams = { N: 2 ** 16, r: 8, p: 1 };

const WRAP_AAD = Buffer.from('cairn master key v1');

export function deriveKeys(master: Buffer): ArchiveKeys {
  const derive = (info: string, length = 32): Buffer => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `cairn ${info}`, length));
  return {
    block: derive('block encryption'),
    blockHash: derive('block hash'),
    tag: derive('tag encryption'),
    tagName: derive('tag name hash'),
    chunker: derive('chunker', 1024),
    fingerprint: derive('fingerprint', 16).toString('hex'),
  };
}

export function newMasterKey(): Buffer {
  return randomBytes(64);
}

function stretch(passphrase: string, salt: Buffer, params: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, 32, { ...params, maxmem: 256 * params.N * params.r + 16 * 1024 * 1024 }, (err, key) => {
      if (err) reject(new BackendError('internal', `scrypt failed: ${err.message}`));
      else resolve(key);
    });
  });
}

/** The value of `#cairn-key`: the master key sealed under the stretched passphrase. */
export async function wrapMasterKey(master: Buffer, passphrase: string, params: KdfParams = DEFAULT_KDF): Promise<Buffer> {
  const salt = randomBytes(32);
  const nonce = randomBytes(12);
  const wrapKey = await stretch(passphrase, salt, params);
  const cipher = createCipheriv('aes-256-gcm', wrapKey, nonce);
  cipher.setAAD(WRAP_AAD);
  const sealed = Buffer.concat([cipher.update(master), cipher.final(), cipher.getAuthTag()]);
  return pack({ v: 1, kdf: 'scrypt', N: params.N, r: params.r, p: params.p, salt, nonce, sealed });
}

/**
 * Unwraps the master key; a wrong passphrase fails here, before anything is written.
 * `whileStretching` runs once scrypt has started on a pool thread: this thread is free until it ends.
 */
export async function unwrapMasterKey(value: Uint8Array, passphrase: string, whileStretching?: () => void): Promise<Buffer> {
  const what = 'the key record (#cairn-key)';
  const record = unpack(value, what);
  if (field(record, 'v', isNumber, what) !== 1 || field(record, 'kdf', isString, what) !== 'scrypt') {
    throw new BackendError('corrupt', `${what} has an unknown version or KDF`);
  }
  const params: KdfParams = { N: field(record, 'N', isNumber, what), r: field(record, 'r', isNumber, what), p: field(record, 'p', isNumber, what) };
  if (params.N > 2 ** 22 || params.r > 64 || params.p > 16) throw new BackendError('corrupt', `${what} asks for unreasonable scrypt parameters`);
  const salt = Buffer.from(field(record, 'salt', isBytes, what));
  const nonce = Buffer.from(field(record, 'nonce', isBytes, what));
  const sealed = Buffer.from(field(record, 'sealed', isBytes, what));
  if (nonce.length !== 12 || sealed.length !== 64 + 16) throw new BackendError('corrupt', `${what} is malformed`);
  const stretching = stretch(passphrase, salt, params);
  if (whileStretching !== undefined) {
    // Should the hook throw, the stretch still settles: never as an unhandled rejection.
    stretching.catch(() => undefined);
    whileStretching();
  }
  const wrapKey = await stretching;
  const decipher = createDecipheriv('aes-256-gcm', wrapKey, nonce);
  decipher.setAAD(WRAP_AAD);
  decipher.setAuthTag(sealed.subarray(64));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(0, 64)), decipher.final()]);
  } catch {
    throw new BackendError('badRequest', 'wrong passphrase: it does not unlock this archive\'s key');
  }
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
