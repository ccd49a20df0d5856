import { UsageError, type BackendFactory } from '../factory.js';

export const fsFactory: BackendFactory<{ dir: string }> = {
  command: 'backend-fs',
  name: 'fs',
  subcommand: true,
  usage: 'backend-fs fs DIR                     one file per block under DIR (created on first use)',
  parseArgs(argv) {
    if (argv.length !== 1 || argv[0] === '') throw new UsageError('fs takes one argument: the archive directory');
    return { dir: argv[0] as string };
  },
  async open(config) {
    const { FsBackend } = await import('./fs-backend.js');
    return FsBackend.open(config.dir);
  },
};
