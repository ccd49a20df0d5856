/**
 * The splitlog record format: CRC-32C against its published check value and
 * a bytewise reference, and records that decode only when every byte is right.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { crc32c, crc32cJs } from '../src/backends/splitlog/crc32c.js';
import { decodeRecord, encodeRecord, HEADER_SIZE, RecordType } from '../src/backends/splitlog/record.js';

function reference(data: Uint8Array): number {
  let crc = ~0;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('splitlog records', () => {
  for (const [label, crc] of [['native (@node-rs/crc32)', crc32c], ['JavaScript', crc32cJs]] as const) {
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

  it('the native CRC-32C is the one in use here (its prebuilt binary installs on linux-x64)', () => {
    assert.notEqual(crc32c, crc32cJs);
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
