/**
 * The replicated backend's pure parts: weighted placement choices and the
 * versioned tag format.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pickForWrite, weightedOrder } from '../src/replicate/placement.js';
import { decodeTag, encodeTag } from '../src/replicate/replica-tags.js';

/** A small seeded generator (xorshift), so the statistics below are reproducible. */
function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

describe('placement choices', () => {
  it('members are picked first in proportion to their weight', () => {
    const random = seeded(42);
    const members = [{ id: 1, w: 1 }, { id: 2, w: 3 }, { id: 3, w: 6 }];
    const first = new Map<number, number>();
    for (let i = 0; i < 20000; i += 1) {
      const id = (weightedOrder(members, (m) => m.w, random)[0] as { id: number }).id;
      first.set(id, (first.get(id) ?? 0) + 1);
    }
    assert.ok(Math.abs((first.get(1) ?? 0) / 20000 - 0.1) < 0.02, `weight 1: ${first.get(1)}`);
    assert.ok(Math.abs((first.get(2) ?? 0) / 20000 - 0.3) < 0.02, `weight 3: ${first.get(2)}`);
    assert.ok(Math.abs((first.get(3) ?? 0) / 20000 - 0.6) < 0.02, `weight 6: ${first.get(3)}`);
  });

  it('a weight of 0 comes after every weighted member', () => {
    fc.assert(fc.property(fc.array(fc.nat(5), { minLength: 1, maxLength: 8 }), fc.integer(), (weights, seed) => {
      const order = weightedOrder(weights.map((w, id) => ({ id, w })), (m) => m.w, seeded(seed));
      const firstZero = order.findIndex((m) => m.w === 0);
      if (firstZero >= 0) assert.ok(order.slice(firstZero).every((m) => m.w === 0));
      assert.equal(order.length, weights.length);
    }));
  });

  it('writes pick members until their trust reaches what is needed, never members without trust', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ trust: fc.nat(100), w: fc.nat(4) }), { maxLength: 8 }),
      fc.integer({ min: 1, max: 100 }),
      fc.integer(),
      (specs, need, seed) => {
        const candidates = specs.map((s, id) => ({ id, trust: s.trust, w: s.w }));
        const picked = pickForWrite(candidates, need, (m) => m.w, seeded(seed));
        const trust = picked.reduce((sum, m) => sum + m.trust, 0);
        const available = candidates.reduce((sum, m) => sum + m.trust, 0);
        assert.ok(picked.every((m) => m.trust > 0));
        assert.equal(new Set(picked.map((m) => m.id)).size, picked.length, 'no member twice');
        if (available >= need) assert.ok(trust >= need, `picked ${trust} of ${need}`);
        else assert.equal(trust, available, 'every member with trust, when that is still not enough');
        if (picked.length > 0) assert.ok(trust - (picked[picked.length - 1] as { trust: number }).trust < need, 'no pick beyond the need');
      },
    ));
  });
});

describe('versioned tags', () => {
  it('a value and a removal record survive encoding with their version', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.option(fc.uint8Array({ maxLength: 200 })), (version, value) => {
      const decoded = decodeTag(encodeTag({ version, value }));
      assert.equal(decoded.version, version);
      if (value === null) assert.equal(decoded.value, null);
      else assert.deepEqual(Buffer.from(decoded.value as Uint8Array), Buffer.from(value));
    }));
  });

  it('a value written without the header (directly on a member) counts as version 0', () => {
    const raw = Buffer.from('plain value');
    assert.deepEqual(decodeTag(raw), { version: 0n, value: raw });
    assert.equal(decodeTag(new Uint8Array(0)).version, 0n);
  });
});
