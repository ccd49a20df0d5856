/**
 * backend-cache passes the conformance suite around memory, fs (in process
 * and spawned) and a spawned backend.
 *
 * Shared archives: every client of one archive opens the cache with the SAME
 * cache file. That is the safe set-up (README, "backend-cache"): a removal
 * through one client then reaches the cache the others consult, and keys a
 * client learnt but has not committed are checked against the removals the
 * others logged. A client with a cache file of its own would go on vouching
 * for a block another client removed.
 */
import { CacheBackend } from '../src/backends/cache/cache-backend.js';
import { proxyConformance } from './support/proxy-fixtures.js';

proxyConformance({
  label: 'cache',
  wrap: (inner, dir) => new CacheBackend(inner, `${dir}/cache.sqlite`),
  identifier: (inner, dir) => `backend-cache ${dir}/cache.sqlite ${inner}`,
});
