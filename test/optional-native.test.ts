/** Optional native modules (src/optional-native.ts): a function when built and exported, null otherwise. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { optionalNativeFunction } from '../src/optional-native.js';
import { crc32c, crc32cJs } from '../src/backends/splitlog/crc32c.js';

test('an optional native function is found when the module is built, and null when the module or the name is missing', { skip: process.platform !== 'linux' }, () => {
  assert.equal(typeof optionalNativeFunction('cairn-malloc-trim', 'trim'), 'function');
  assert.equal(typeof optionalNativeFunction('cairn-aes-gcm', 'seal'), 'function');
  assert.equal(typeof optionalNativeFunction('cairn-readahead', 'prefetch'), 'function');
  assert.equal(typeof optionalNativeFunction('cairn-readahead', 'readNowait'), 'function');
  assert.equal(typeof optionalNativeFunction('cairn-list-directory', 'listDirectory'), 'function');
  // Exported on x86-64 processors with SSE 4.2 only (native/crc32c).
  if (process.arch === 'x64' && /^flags\s*:.*\bsse4_2\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'))) {
    assert.equal(typeof optionalNativeFunction('cairn-crc32c', 'crc32c'), 'function');
  }
  assert.equal(typeof optionalNativeFunction('@node-rs/crc32', 'crc32c'), 'function');
  assert.notEqual(crc32c, crc32cJs, 'the native CRC-32C is the one in use');
  assert.equal(optionalNativeFunction('cairn-malloc-trim', 'no-such-export'), null);
  assert.equal(optionalNativeFunction('cairn-no-such-module', 'trim'), null);
});
