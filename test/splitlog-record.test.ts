/**
 * The splitlog record format: CRC-32C against its published check value and
 * a bytewise reference, and records that decode only when every byte is right.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { crc32c, crc32cJs, crc32cNodeRs, crc32cOwn } from '../src/backends/splitlog/crc32c.js';
import { decodeRecord, encodeRecord, HEADER_SIZE, RecordType } from '../src/backends/splitlog/record.js';

/** Whether this is an x86-64 processor with SSE 4.2 (native/crc32c exports its function only there). */
const hasSse42 = process.arch === 'x64' && existsSync('/proc/cpuinfo') && /^flags\s*:.*\bsse4_2\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));

function reference(data: Uint8Array): number {
  let crc = ~0;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('splitlog records', () => {
  const implementations: Array<[string, (data: Uint8Array, previous?: number) => number]> = [['in use', crc32c], ['JavaScript', crc32cJs]];
  if (crc32cOwn !== null) implementations.push(['native/crc32c', crc32cOwn]);
  if (crc32cNodeRs !== null) implementations.push(['@node-rs/crc32', crc32cNodeRs]);
  for (const [label, crc] of implementations) {
    it(`CRC-32C, ${label}: "123456789" is e3069283, and any split or alignment gives the bytewise result`, () => {
      assert.equal(crc(Buffer.from('123456789')).toString(16), 'e3069283');
      fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), fc.nat(7), (bytes, at, shift) => {
        const padded = new Uint8Array(bytes.length + shift);
        padded.set(bytes, shift);
        const data = padded.subarray(shift);
        const cut = Math.min(at, data.length);
        assert.equal(crc(data.subarray(cut), crc(data.subarray(0, cut))), reference(data));
      }));
    });
  }

  it('the native CRC-32C is the one in use here (native/crc32c on x86-64 with SSE 4.2, else @node-rs/crc32, whose prebuilt binary installs on linux-x64)', () => {
    assert.notEqual(crc32c, crc32cJs);
    if (hasSse42) assert.equal(crc32c, crc32cOwn, 'native/crc32c is built by npm ci and this processor has SSE 4.2');
  });

  it('native/crc32c over long and unaligned data, continued from any value, gives the JavaScript result; anything but bytes is a TypeError', () => {
    if (crc32cOwn === null) {
      assert.ok(!hasSse42, 'native/crc32c is missing on a processor with SSE 4.2');
      return;
    }
    const own = crc32cOwn;
    const data = new Uint8Array(3 * 1024 * 1024 + 13);
    for (let i = 0; i < data.length; i += 1) data[i] = (i * 2654435761) >>> 24;
    for (const shift of [0, 1, 3, 7]) {
      for (const previous of [0, 1, 0xe3069283, 0xffffffff]) {
        assert.equal(own(data.subarray(shift), previous), crc32cJs(data.subarray(shift), previous), `shift ${shift}, previous ${previous}`);
      }
    }
    assert.equal(own(new Uint8Array(0), 0x12345678), 0x12345678);
    assert.throws(() => own('text' as unknown as Uint8Array), TypeError);
    assert.throws(() => own(new Uint16Array(4) as unknown as Uint8Array), TypeError);
    assert.throws(() => own(new Uint8Array(4), 'x' as unknown as number), TypeError);
  });

  it('a record decodes to its type, name and data, and any single changed bit is caught', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (data, flip) => {
      const head = encodeRecord(RecordType.BlockPut, 'key-1', data);
      const record = Buffer.concat([head, data]);
      const decoded = decodeRecord(record);
      assert.ok(typeof decoded !== 'string');
      assert.equal(decoded.name, 'key-1');
      assert.deepEqual(new Uint8Array(decoded.data), data);
      assert.equal(record.length, HEADER_SIZE + 5 + data.length);
      const bit = flip % (record.length * 8);
      record[bit >> 3] = (record[bit >> 3] as number) ^ (1 << (bit & 7));
      assert.equal(typeof decodeRecord(record), 'string');
    }));
  });
});
