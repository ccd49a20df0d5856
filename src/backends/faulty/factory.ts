import type { BackendFactory } from '../factory.js';
import { innerIdentifier } from '../proxy-args.js';
import { FAULT_OPTIONS_USAGE, parseFaultArgs, type FaultSchedule } from './fault-schedule.js';

export interface FaultyConfig {
  schedule: FaultSchedule;
  inner: string;
}

const USAGE = "backend-faulty [OPTIONS] 'INNER'";

export const faultyFactory: BackendFactory<FaultyConfig> = {
  command: 'backend-faulty',
  name: 'faulty',
  subcommand: false,
  usage: `${USAGE}   inject faults into INNER on a schedule (for tests and rehearsals)\n${FAULT_OPTIONS_USAGE.replace(/^/gm, '    ')}`,
  parseArgs(argv) {
    const { schedule, positional } = parseFaultArgs(argv, process.env);
    return { schedule, inner: innerIdentifier(positional, USAGE) };
  },
  async open(config, context) {
    const { FaultyBackend } = await import('./faulty-backend.js');
    const inner = await context.openArchive(config.inner);
    try {
      return new FaultyBackend(inner, config.schedule, { log: context.log });
    } catch (err) {
      await inner.close().catch(() => undefined);
      throw err;
    }
  },
};
