/**
 * backend-throttle, with generous quotas, passes the conformance suite around
 * memory, fs (in process and spawned) and a spawned backend.
 */
import { ThrottleBackend } from '../src/backends/throttle/throttle-backend.js';
import { proxyConformance } from './support/proxy-fixtures.js';

proxyConformance({
  label: 'throttle',
  wrap: (inner) => new ThrottleBackend(inner, { read: 1024 ** 3, write: 1024 ** 3, ops: 100_000 }),
  identifier: (inner) => `backend-throttle --read 1G --write=1GB/s --ops 100000 ${inner}`,
});
