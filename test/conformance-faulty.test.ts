/**
 * backend-faulty with no faults scheduled passes the conformance suite around
 * memory, fs (in process and spawned) and a spawned backend.
 */
import { parseFaultArgs } from '../src/backends/faulty/fault-schedule.js';
import { FaultyBackend } from '../src/backends/faulty/faulty-backend.js';
import { proxyConformance } from './support/proxy-fixtures.js';

proxyConformance({
  label: 'faulty (no faults)',
  wrap: (inner) => new FaultyBackend(inner, parseFaultArgs(['--seed', '1'], {}).schedule),
  identifier: (inner) => `backend-faulty --seed 1 ${inner}`,
});
