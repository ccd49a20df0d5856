import { UsageError, type BackendFactory } from '../factory.js';
import { parseByteSize } from '../units.js';
import type { SplitlogConfig } from './splitlog-backend.js';
import { checkLogfileSize } from './settings.js';
import { BackendError } from '../errors.js';

export const splitlogFactory: BackendFactory<SplitlogConfig> = {
  command: 'backend-fs',
  name: 'splitlog',
  subcommand: true,
  usage: 'backend-fs splitlog LOGDIR METADATA.sqlite [MAX-LOGFILE-BYTES]\n'
    + '                                       append-only logs of at most MAX-LOGFILE-BYTES (default 900000000) with a SQLite index',
  parseArgs(argv) {
    if (argv.length < 2 || argv.length > 3 || argv[0] === '' || argv[1] === '') {
      throw new UsageError('splitlog takes LOGDIR, METADATA.sqlite and optionally MAX-LOGFILE-BYTES');
    }
    let max: number | null = null;
    if (argv[2] !== undefined) {
      max = parseByteSize(argv[2], 'MAX-LOGFILE-BYTES');
      try {
        checkLogfileSize(max);
      } catch (err) {
        throw new UsageError((err as BackendError).message);
      }
    }
    return { logDir: argv[0] as string, metaFile: argv[1] as string, maxLogfileBytes: max };
  },
  async open(config, context) {
    const { SplitlogBackend } = await import('./splitlog-backend.js');
    return SplitlogBackend.open(config, context);
  },
};
