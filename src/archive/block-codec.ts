import { createCipheriv, createDecipheriv, createHmac, randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { Decompressor } from 'zstd-napi';
import { BackendError } from '../backends/errors.js';
import type { BlockType } from './format.js';
import { optionalNativeFunction } from '../optional-native.js';

/**
 * Blocks (docs/format.md, "Blocks"). The key is the hex HMAC-SHA-256 of the
 * type byte and the plaintext under the block-hash key. The stored bytes are
 *
 *     version (1) | nonce (12) | AES-256-GCM( compression (1) | type (1) | payload ) | tag (16)
 *
 * with the block key as associated data, so a block cannot be moved to
 * another key. Compression 1 is zstd; 0 stores the plaintext when zstd would
 * not save at least 1/32 of it (judged on a 64 KiB sample first for blocks of 512 KiB or more).
 */
const BLOCK_VERSION = 1;

/** zstd-napi's low-level binding: compressing into a buffer of ours (the high-level Compressor allocates one or two per call). */
const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

/**
 * AES-256-GCM that writes into a buffer of ours (native/aes-gcm, an optional
 * module built by `npm ci`): Node's cipher returns a fresh buffer for every
 * update, and the sealed block was then framed in another, two block-sized
 * buffers a block whose pages the worker faulted in (bench/NOTES.md,
 * "Sixth pass"). Where it is not built, Node's cipher does the same work.
 */
export interface NativeGcm {
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, head: Uint8Array, payload: Uint8Array, out: Uint8Array): void;
}

/** native/aes-gcm's open: decrypts `ciphertext` into `out`; false when the tag is wrong (then `out` must not be used). */
export type NativeOpen = (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array) => boolean;

const nativeSeal = process.env.CAIRN_NO_NATIVE_GCM === '1' ? null : optionalNativeFunction<NativeGcm['seal']>('cairn-aes-gcm', 'seal');
const nativeGcm: NativeGcm | null = nativeSeal === null ? null : { seal: nativeSeal };

/** Whether blocks are sealed by native/aes-gcm (tests check both ways give the same bytes). */
export const sealsNatively = nativeGcm !== null;

const nativeOpen = process.env.CAIRN_NO_NATIVE_GCM === '1' ? null : optionalNativeFunction<NativeOpen>('cairn-aes-gcm', 'open');

/** Whether blocks are opened by native/aes-gcm. */
export const opensNatively = nativeOpen !== null;

export type Compression = 'zstd' | 'none';

/**
 * A block's key: HMAC-SHA256 under the archive's hash key of the type byte
 * then the plaintext, in hex. Through native/aes-gcm's `blockKey` where it is
 * built (one call, no Hmac object per block), else Node's Hmac.
 */
export function blockKey(hashKey: Buffer, type: BlockType, plaintext: Uint8Array): string {
  // The native HMAC takes keys of up to one SHA-256 block (an archive's are 32 bytes); Node's hashes longer ones first.
  return nativeBlockKey === null || hashKey.length > 64 ? blockKeyByNode(hashKey, type, plaintext) : nativeBlockKey(hashKey, type, plaintext);
}

type BlockKeyFunction = (hashKey: Uint8Array, type: number, plaintext: Uint8Array) => string;
const nativeBlockKey = process.env.CAIRN_NO_NATIVE_HMAC === '1' ? null : optionalNativeFunction<BlockKeyFunction>('cairn-aes-gcm', 'blockKey');

/** Whether block keys are computed by native/aes-gcm (tests check both ways give the same keys). */
export const namesNatively = nativeBlockKey !== null;

type BlockKeysFunction = (hashKey: Uint8Array, type: number, data: Uint8Array, lengths: Uint32Array) => string[];
const nativeBlockKeys = process.env.CAIRN_NO_NATIVE_HMAC === '1' ? null : optionalNativeFunction<BlockKeysFunction>('cairn-aes-gcm', 'blockKeys');

/**
 * `blockKey` of each chunk, in order. Chunks that follow each other in one
 * buffer (a window of a file, cut) are named in one call of native/aes-gcm's
 * `blockKeys`, which from 1 MiB on names the second half on a thread of its
 * own: a 4 MiB window took 2.6-2.7 ms, now 1.5 ms (the same CPU), which
 * shortens a snapshot's wait for a big file's last windows when the rest of
 * it has left a core idle (bench/NOTES.md, "Twentieth pass").
 */
export function blockKeysOf(hashKey: Buffer, type: BlockType, chunks: Uint8Array[]): string[] {
  const first = chunks[0];
  const last = chunks[chunks.length - 1];
  if (nativeBlockKeys === null || hashKey.length > 64 || first === undefined || last === undefined || chunks.length < 2 || !consecutive(chunks)) {
    return chunks.map((chunk) => blockKey(hashKey, type, chunk));
  }
  const run = new Uint8Array(first.buffer, first.byteOffset, last.byteOffset + last.length - first.byteOffset);
  return nativeBlockKeys(hashKey, type, run, Uint32Array.from(chunks, (chunk) => chunk.length));
}

/** Whether each chunk starts in the same buffer where the one before it ends. */
function consecutive(chunks: Uint8Array[]): boolean {
  for (let i = 1; i < chunks.length; i += 1) {
    const before = chunks[i - 1] as Uint8Array;
    const chunk = chunks[i] as Uint8Array;
    if (chunk.buffer !== before.buffer || chunk.byteOffset !== before.byteOffset + before.length) return false;
  }
  return true;
}

/** `blockKey` with Node's Hmac. */
export function blockKeyByNode(hashKey: Buffer, type: BlockType, plaintext: Uint8Array): string {
  const hmac = createHmac('sha256', hashKey);
  hmac.update(Buffer.of(type));
  hmac.update(plaintext);
  return hmac.digest('hex');
}

/**
 * Random nonces, drawn from the system's generator 4 KiB at a time: a call
 * for each 12-byte nonce cost about 20 us (0.1 s of a 7,000-block snapshot).
 * Each nonce is a fresh copy; the pool's bytes are never handed out twice.
 */
const NONCE_BYTES = 12;
const noncePool = Buffer.allocUnsafe(NONCE_BYTES * 341);
let nonceAt = noncePool.length;

function freshNonce(): Buffer {
  if (nonceAt + NONCE_BYTES > noncePool.length) {
    randomFillSync(noncePool);
    nonceAt = 0;
  }
  const nonce = Buffer.from(noncePool.subarray(nonceAt, nonceAt + NONCE_BYTES));
  nonceAt += NONCE_BYTES;
  return nonce;
}

/**
 * The stored bytes of a block: version | nonce | AES-256-GCM(head | payload) | tag, with the key as associated
 * data. Through `native` when given (one buffer, written in place), else Node's cipher.
 */
export function sealBlock(encryptionKey: Buffer, nonce: Buffer, key: string, head: Buffer, payload: Uint8Array, native: NativeGcm | null = nativeGcm): Buffer {
  const aad = Buffer.from(key, 'latin1');
  if (native !== null) {
    // A buffer of its own (not a pool slice): the block worker hands it to the main thread without a copy.
    const out = Buffer.allocUnsafeSlow(1 + NONCE_BYTES + head.length + payload.length + 16);
    out[0] = BLOCK_VERSION;
    nonce.copy(out, 1);
    native.seal(encryptionKey, nonce, aad, head, payload, out.subarray(1 + NONCE_BYTES));
    return out;
  }
  const cipher = createCipheriv('aes-256-gcm', encryptionKey, nonce);
  cipher.setAAD(aad);
  const sealedHead = cipher.update(head);
  const body = cipher.update(payload);
  const tail = cipher.final();
  return Buffer.concat([Buffer.of(BLOCK_VERSION), nonce, sealedHead, body, tail, cipher.getAuthTag()]);
}

/** Largest plaintext `openTransient` decompresses into its own buffer (a block is at most 8 MiB). */
const MAX_TRANSIENT = 8 * 1024 * 1024;

export class BlockCodec {
  private readonly cctx = new zstd.CCtx();
  /** Where blocks are compressed; used again for every block (the output is encrypted from it at once). */
  private scratch = Buffer.alloc(0);
  private readonly decompressor = new Decompressor();
  private readonly dctx = new zstd.DCtx();
  /** Where `openTransient` decrypts, natively. */
  private cipherScratch = Buffer.alloc(0);
  /** Where `openTransient` decompresses. */
  private plainScratch = Buffer.alloc(0);

  /** `opener`: native/aes-gcm's open where it is built, null for Node's decipher (tests compare the two). */
  constructor(
    private readonly encryptionKey: Buffer, private readonly compression: Compression = 'zstd', level = 3,
    private readonly opener: NativeOpen | null = nativeOpen,
  ) {
    this.cctx.setParameter(zstd.CParameter.compressionLevel, level);
  }

  /** The compressed bytes, as a view of `scratch`: valid until the next call. */
  private compress(data: Uint8Array): Buffer {
    const bound = zstd.compressBound(data.length);
    if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafeSlow(bound);
    return this.scratch.subarray(0, this.cctx.compress2(this.scratch, data));
  }

  /** Compresses (when it pays) and seals a block whose key is `key`. */
  seal(key: string, type: BlockType, plaintext: Uint8Array): Buffer {
    let method = 0;
    let payload: Uint8Array = plaintext;
    if (this.compression === 'zstd' && plaintext.length >= 64 && this.samplePays(plaintext)) {
      const packed = this.compress(plaintext);
      if (packed.length < plaintext.length - (plaintext.length >> 5)) {
        method = 1;
        payload = packed;
      }
    }
    return sealBlock(this.encryptionKey, freshNonce(), key, Buffer.of(method, type), payload, nativeGcm);
  }

  /**
   * For a big block, compresses a 64 KiB sample first: already-compressed or
   * random data (that does not shrink by 1/32) is stored as it is without
   * spending the time to compress all of it.
   */
  private samplePays(plaintext: Uint8Array): boolean {
    if (plaintext.length < 512 * 1024) return true;
    const start = (plaintext.length >> 1) - 32 * 1024;
    const sample = plaintext.subarray(start, start + 64 * 1024);
    return this.compress(sample).length < sample.length - (sample.length >> 5);
  }

  /** Opens a block read under `key`, checking it is of `type`; any tampering is `corrupt`. */
  open(key: string, type: BlockType, sealed: Uint8Array): Buffer {
    const [method, payload] = this.decrypt(key, type, sealed, false);
    return method === 0 ? payload : this.decompressed(key, () => this.decompressor.decompress(payload));
  }

  /**
   * As `open`, but a block is decompressed (and, natively, decrypted) into
   * buffers this codec keeps and uses again: the plaintext is valid until
   * the next call.
   * For a reader that uses it at once (the restore thread writes it to a
   * file): no block-sized buffer per block for the collector to free.
   */
  openTransient(key: string, type: BlockType, sealed: Uint8Array): Buffer {
    const [method, payload] = this.decrypt(key, type, sealed, true);
    if (method === 0) return payload;
    return this.decompressed(key, () => {
      const size = zstd.getFrameContentSize(payload);
      // A frame that does not say its size (cairn's always do) or is too big: a buffer of its own.
      if (size === null || size > MAX_TRANSIENT) return this.decompressor.decompress(payload);
      if (this.plainScratch.length < size) this.plainScratch = Buffer.allocUnsafeSlow(Math.max(size, 64 * 1024));
      const written = this.dctx.decompress(this.plainScratch, payload);
      if (written !== size) throw new Error(`${written} bytes where its frame says ${size}`);
      return this.plainScratch.subarray(0, written);
    });
  }

  /** Runs a decompression of `key`'s payload; any failure (a frame zstd refuses, a wrong size) is `corrupt`. */
  private decompressed(key: string, decompress: () => Buffer): Buffer {
    try {
      return decompress();
    } catch (err) {
      throw new BackendError('corrupt', `block ${key} does not decompress: ${(err as Error).message}`);
    }
  }

  /**
   * Checks and decrypts a sealed block: its compression method and payload.
   * `transient`: natively, into a buffer this codec uses again (valid until
   * the next call).
   */
  private decrypt(key: string, type: BlockType, sealed: Uint8Array, transient: boolean): [method: 0 | 1, payload: Buffer] {
    if (sealed.length < 1 + 12 + 2 + 16 || sealed[0] !== BLOCK_VERSION) {
      throw new BackendError('corrupt', `block ${key} is damaged (bad header)`);
    }
    const nonce = sealed.subarray(1, 13);
    const plain = this.opener !== null ? this.decryptNatively(key, sealed, nonce, this.opener, transient) : this.decryptByNode(key, sealed, nonce);
    if (plain[1] !== type) throw new BackendError('corrupt', `block ${key} is of type ${plain[1]}, expected ${type}`);
    if (plain[0] !== 0 && plain[0] !== 1) throw new BackendError('corrupt', `block ${key} names an unknown compression ${plain[0]}`);
    return [plain[0], plain.subarray(2)];
  }

  private decryptNatively(key: string, sealed: Uint8Array, nonce: Uint8Array, opener: NativeOpen, transient: boolean): Buffer {
    const body = sealed.subarray(13, sealed.length - 16);
    let out: Buffer;
    if (transient) {
      if (this.cipherScratch.length < body.length) this.cipherScratch = Buffer.allocUnsafeSlow(Math.max(body.length, 64 * 1024));
      out = this.cipherScratch.subarray(0, body.length);
    } else {
      out = Buffer.allocUnsafe(body.length);
    }
    if (!opener(this.encryptionKey, nonce, Buffer.from(key, 'latin1'), body, sealed.subarray(sealed.length - 16), out)) {
      throw new BackendError('corrupt', `block ${key} is damaged or was tampered with (authentication failed)`);
    }
    return out;
  }

  private decryptByNode(key: string, sealed: Uint8Array, nonce: Uint8Array): Buffer {
    const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, nonce);
    decipher.setAAD(Buffer.from(key, 'latin1'));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    let plain: Buffer;
    try {
      plain = decipher.update(sealed.subarray(13, sealed.length - 16));
      // GCM yields everything from update; final only checks the tag (no second block-sized copy).
      const rest = decipher.final();
      if (rest.length > 0) plain = Buffer.concat([plain, rest]);
    } catch {
      throw new BackendError('corrupt', `block ${key} is damaged or was tampered with (authentication failed)`);
    }
    return plain;
  }
}
