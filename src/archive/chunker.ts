import { optionalNativeFunction } from '../optional-native.js';

/**
 * Content-defined chunking (docs/format.md, "Chunking"): FastCDC with a gear
 * hash whose table is derived from the archive key, so boundaries depend on
 * the content around them (an insertion moves only nearby boundaries) and
 * reveal nothing about known content to whoever sees the block sizes.
 *
 * Sizes: average about 1 MiB, minimum half of that, maximum four times
 * the average but never above what a block of the backend can hold.
 */
export interface ChunkSizes {
  min: number;
  avg: number;
  max: number;
}

export function chunkSizes(maxPlaintext: number): ChunkSizes {
  let avg = 1024 * 1024;
  while (avg > 4096 && avg * 2 > maxPlaintext) avg /= 2;
  return { min: avg / 2, avg, max: Math.min(avg * 4, maxPlaintext) };
}

export function gearTable(seed: Buffer): Int32Array {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i += 1) table[i] = seed.readInt32LE((i * 4) % (seed.length - 3));
  return table;
}

/** A mask of `bits` one-bits at the top of a 32-bit word (the bits that depend on the most bytes). */
function topMask(bits: number): number {
  return (~0 << (32 - bits)) | 0;
}

/** native/gear-chunk's cut: Chunker.cut in C (about five times the speed); -1 for arguments it refuses. */
export type NativeCut = (buf: Uint8Array, start: number, end: number, gear: Int32Array, min: number, avg: number, max: number, maskS: number, maskL: number) => number;
export const nativeCut = process.env.CAIRN_NO_NATIVE_CHUNKER === '1' ? null : optionalNativeFunction<NativeCut>('cairn-gear-chunk', 'cut');

export class Chunker {
  private readonly maskS: number;
  private readonly maskL: number;
  private pending: Buffer = Buffer.alloc(0);

  /** `native`: native/gear-chunk's cut where it is built, null for the loop below (tests compare the two). */
  constructor(private readonly gear: Int32Array, readonly sizes: ChunkSizes, private readonly native: NativeCut | null = nativeCut) {
    const bits = Math.round(Math.log2(sizes.avg));
    this.maskS = topMask(bits + 2);
    this.maskL = topMask(bits - 2);
  }

  /**
   * Cuts `buf` into chunks. Without `final`, the bytes after the last cut
   * that can be decided (fewer than `max` bytes) come back as `rest`, to be
   * put in front of the next bytes. Chunks are views of `buf`.
   */
  split(buf: Buffer, final: boolean): { chunks: Buffer[]; rest: Buffer } {
    const chunks: Buffer[] = [];
    let pos = 0;
    while (buf.length - pos >= this.sizes.max || (final && pos < buf.length)) {
      const cut = this.cut(buf, pos, buf.length);
      chunks.push(buf.subarray(pos, cut));
      pos = cut;
    }
    return { chunks, rest: buf.subarray(pos) };
  }

  /** Feeds bytes of a stream; returns the chunks now complete (views: do not reuse the input). */
  push(data: Buffer): Buffer[] {
    const buf = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    const { chunks, rest } = this.split(buf, false);
    this.pending = rest;
    return chunks;
  }

  /** The last chunks of a stream. */
  end(): Buffer[] {
    const { chunks } = this.split(this.pending, true);
    this.pending = Buffer.alloc(0);
    return chunks;
  }

  /** FastCDC's cut point with normalised chunking: a stricter mask before the average, a looser one after. */
  private cut(buf: Buffer, start: number, end: number): number {
    const { min, avg, max } = this.sizes;
    const remaining = end - start;
    if (remaining <= min) return end;
    if (this.native !== null) {
      const cut = this.native(buf, start, end, this.gear, min, avg, max, this.maskS >>> 0, this.maskL >>> 0);
      if (cut >= 0) return cut;
    }
    const limit = start + Math.min(remaining, max);
    const normal = start + Math.min(remaining, avg);
    const warm = start + min - 32;
    const h = scan(buf, this.gear, warm, start + min, 0, 0);
    const cutS = scan(buf, this.gear, start + min, normal, h, this.maskS);
    if (cutS > 0) return cutS;
    const cutL = scan(buf, this.gear, normal, limit, lastHash, this.maskL);
    if (cutL > 0) return cutL;
    return limit;
  }
}

let lastHash = 0;

/**
 * Rolls the gear hash over buf[from, to) starting from `h`; returns the
 * position after the first byte where `h & mask` is zero, or 0 (leaving the
 * hash in `lastHash`). Kept small and monomorphic: this is the hot loop.
 */
function scan(buf: Uint8Array, gear: Int32Array, from: number, to: number, h: number, mask: number): number {
  let hash = h;
  if (mask === 0) {
    for (let i = from; i < to; i += 1) hash = ((hash << 1) + (gear[buf[i] as number] as number)) | 0;
    lastHash = hash;
    return hash;
  }
  for (let i = from; i < to; i += 1) {
    hash = ((hash << 1) + (gear[buf[i] as number] as number)) | 0;
    if ((hash & mask) === 0) return i + 1;
  }
  lastHash = hash;
  return 0;
}
