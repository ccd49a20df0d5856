import type { BackendFactory } from '../factory.js';
import { innerIdentifier, parseProxyArgs } from '../proxy-args.js';
import { parseQuota, ThrottleBackend, type ThrottleRates } from './throttle-backend.js';

export interface ThrottleConfig {
  rates: ThrottleRates;
  inner: string;
}

const USAGE = "backend-throttle [--read RATE] [--write RATE] [--ops N] 'INNER'";

export const throttleFactory: BackendFactory<ThrottleConfig> = {
  command: 'backend-throttle',
  name: 'throttle',
  subcommand: false,
  usage: `${USAGE}   keep INNER's bandwidth (RATE like 512k, 10M, 2MB/s) and requests per second under quotas`,
  parseArgs(argv) {
    const { options, positional } = parseProxyArgs(argv, { values: ['read', 'write', 'ops'] });
    const quota = (which: keyof ThrottleRates): number => {
      const value = options.get(which)?.[0];
      return value === undefined ? 0 : parseQuota(which, value);
    };
    return { rates: { read: quota('read'), write: quota('write'), ops: quota('ops') }, inner: innerIdentifier(positional, USAGE) };
  },
  async open(config, context) {
    return new ThrottleBackend(await context.openArchive(config.inner), config.rates);
  },
};
