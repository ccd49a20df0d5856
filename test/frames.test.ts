import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeBody, encodeFrame, FrameDecoder, FrameError, MAX_FRAME_BYTES } from '../src/protocol/frames.js';

function frames(messages: unknown[]): Buffer {
  return Buffer.concat(messages.flatMap((m) => encodeFrame(m)));
}

const messages: unknown[] = [
  [1, 'put', 'key', Buffer.from('data')],
  ['hello', { protocol: 1, backend: 'fs', blockSize: 65536, writable: true, features: ['admin'] }],
  [2, 0, null],
  [3, 1, { code: 'badRequest', message: 'no' }],
  ['log', 'info', 'x'.repeat(300)],
  [4, 'existsMany', Array.from({ length: 50 }, (_, i) => `k${i}`)],
];

describe('frame codec', () => {
  it('decodes a multi-frame buffer split at every offset into the same frames', () => {
    const whole = frames(messages);
    for (let split = 0; split <= whole.length; split += 1) {
      const decoder = new FrameDecoder();
      const bodies = [...decoder.push(whole.subarray(0, split)), ...decoder.push(whole.subarray(split))];
      assert.deepEqual(bodies.map(decodeBody), messages, `split at ${split}`);
      assert.equal(decoder.partial, false);
    }
  });

  it('decodes the same frames whatever the chunking (property)', () => {
    const whole = frames(messages);
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 200 }), (sizes) => {
      const decoder = new FrameDecoder();
      const out: unknown[] = [];
      let offset = 0;
      for (const size of sizes) {
        out.push(...decoder.push(whole.subarray(offset, offset + size)).map(decodeBody));
        offset += size;
      }
      out.push(...decoder.push(whole.subarray(offset)).map(decodeBody));
      assert.deepEqual(out, messages);
    }));
  });

  it('round-trips any array of MessagePack-able values (property)', () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.uint8Array().map((u) => Buffer.from(u)));
    fc.assert(fc.property(fc.array(fc.array(value, { minLength: 1 }), { minLength: 1, maxLength: 10 }), (msgs) => {
      const decoder = new FrameDecoder();
      assert.deepEqual(decoder.push(frames(msgs)).map(decodeBody), msgs);
    }));
  });

  it('binary payloads travel as bin and come back as bytes, never strings', () => {
    const [, body] = encodeFrame([1, 'put', 'k', Buffer.from([0xff, 0x00])]);
    assert.equal(body[body.length - 4], 0xc4, 'bin 8 marker');
    const decoded = decodeBody(body) as unknown[];
    assert.ok(decoded[3] instanceof Uint8Array);
  });

  it('a large binary last element (written without copying) decodes to the same message', () => {
    const block = Buffer.alloc(200_000, 7);
    for (const message of [[1, 'put', 'k'.repeat(128), block], [2, 0, block], [3, 'setTag', 'tag', block]]) {
      const decoder = new FrameDecoder();
      const whole = Buffer.concat(encodeFrame(message));
      assert.deepEqual(decoder.push(whole).map(decodeBody), [message]);
    }
  });

  it('rejects a length over 64 MiB from the header alone, before buffering it', () => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    assert.throws(() => decoder.push(header), FrameError);
  });

  it('rejects a zero length', () => {
    assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0])), FrameError);
  });

  it('accepts a length of exactly 64 MiB in the header', () => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME_BYTES, 0);
    assert.deepEqual(decoder.push(header), []);
    assert.equal(decoder.partial, true);
  });

  it('reports a truncated frame as partial', () => {
    const whole = frames([messages[0]]);
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(whole.subarray(0, whole.length - 1)), []);
    assert.equal(decoder.partial, true);
  });

  it('rejects bodies that are not exactly one MessagePack value', () => {
    assert.throws(() => decodeBody(Buffer.from([0x91])), FrameError, 'truncated array');
    assert.throws(() => decodeBody(Buffer.from([0x01, 0x02])), FrameError, 'two values');
  });

  it('never crashes on random bodies: each decodes or throws FrameError (property)', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
      try {
        decodeBody(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof FrameError);
      }
    }), { numRuns: 2000 });
  });
});
