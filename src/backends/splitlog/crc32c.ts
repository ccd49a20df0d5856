/**
 * CRC-32C (Castagnoli), the checksum of every splitlog record. From
 * native/crc32c where it is built (x86-64 with SSE 4.2: 4.7-4.9 GB/s
 * through Node on the bench machine of the eleventh pass, bench/NOTES.md),
 * else @node-rs/crc32 (SSE 4.2 or ARMv8 instructions: 3.1 GB/s on that
 * machine, 4.9-6.6 GB/s on an earlier one), with plain JavaScript where its
 * prebuilt binary is missing (slicing-by-8, reading aligned 32-bit words
 * where the platform is little-endian, bytes elsewhere: 1.5-1.7 GB/s). A snapshot sums every record it writes, a
 * restore every record it reads: 540 MB of each for the 952 MB bench tree.
 */
import { endianness } from 'node:os';
import { optionalNativeFunction } from '../../optional-native.js';

const POLY = 0x82f63b78;
const LITTLE_ENDIAN = endianness() === 'LE';

function makeTables(): Int32Array[] {
  const tables = Array.from({ length: 8 }, () => new Int32Array(256));
  const first = tables[0] as Int32Array;
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    first[n] = c;
  }
  for (let n = 0; n < 256; n += 1) {
    let c = first[n] as number;
    for (let t = 1; t < 8; t += 1) {
      c = (first[c & 0xff] as number) ^ (c >>> 8);
      (tables[t] as Int32Array)[n] = c;
    }
  }
  return tables;
}

const [T0, T1, T2, T3, T4, T5, T6, T7] = makeTables() as [
  Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array,
];

const EMPTY = new Int32Array(0);

type Crc = (data: Uint8Array, previous?: number) => number;

/** native/crc32c (SSE 4.2 on x86-64), where it is built and the processor has the instruction. */
export const crc32cOwn = optionalNativeFunction<Crc>('cairn-crc32c', 'crc32c');

/** @node-rs/crc32, where it has a prebuilt binary for this platform. */
function loadNodeRs(): Crc | null {
  const native = optionalNativeFunction<(data: Uint8Array, initial?: number) => number>('@node-rs/crc32', 'crc32c');
  return native === null ? null : (data, previous = 0) => native(data, previous);
}
export const crc32cNodeRs = loadNodeRs();

/** Continues a CRC-32C over `data` (start with `crc32c(data)`, then `crc32c(more, previous)`). */
export const crc32c: Crc = crc32cOwn ?? crc32cNodeRs ?? crc32cJs;

/** The same in plain JavaScript (exported for the test that compares the two). */
export function crc32cJs(data: Uint8Array, previous = 0): number {
  let crc = ~previous;
  let i = 0;
  const length = data.length;
  if (LITTLE_ENDIAN) {
    while (i < length && ((data.byteOffset + i) & 3) !== 0) {
      crc = (T0[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
      i += 1;
    }
    const words = ((length - i) >>> 3) << 1;
    const view = words === 0 ? EMPTY : new Int32Array(data.buffer, data.byteOffset + i, words);
    for (let j = 0; j < words; j += 2) {
      const a = crc ^ (view[j] as number);
      const b = view[j + 1] as number;
      crc = (T7[a & 0xff] as number) ^ (T6[(a >>> 8) & 0xff] as number) ^ (T5[(a >>> 16) & 0xff] as number) ^ (T4[a >>> 24] as number)
        ^ (T3[b & 0xff] as number) ^ (T2[(b >>> 8) & 0xff] as number) ^ (T1[(b >>> 16) & 0xff] as number) ^ (T0[b >>> 24] as number);
    }
    i += words * 4;
  } else {
    const end8 = length - (length % 8);
    while (i < end8) {
      const a = crc ^ (data[i] as number) ^ ((data[i + 1] as number) << 8) ^ ((data[i + 2] as number) << 16) ^ ((data[i + 3] as number) << 24);
      crc = (T7[a & 0xff] as number) ^ (T6[(a >>> 8) & 0xff] as number) ^ (T5[(a >>> 16) & 0xff] as number) ^ (T4[a >>> 24] as number)
        ^ (T3[data[i + 4] as number] as number) ^ (T2[data[i + 5] as number] as number) ^ (T1[data[i + 6] as number] as number) ^ (T0[data[i + 7] as number] as number);
      i += 8;
    }
  }
  while (i < length) {
    crc = (T0[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
    i += 1;
  }
  return ~crc >>> 0;
}
