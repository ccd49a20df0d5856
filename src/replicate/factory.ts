import { UsageError, type BackendFactory } from '../backends/factory.js';

export const replicatedFactory: BackendFactory<{ config: string }> = {
  command: 'backend-replicated',
  name: 'replicated',
  subcommand: false,
  usage: 'backend-replicated CONFIG.sqlite     blocks over member archives with trust weights (members: archive-admin ... add-member)',
  parseArgs(argv) {
    if (argv.length !== 1 || argv[0] === '') throw new UsageError('backend-replicated takes one argument: the SQLite file of the set (created on first use)');
    return { config: argv[0] as string };
  },
  async open(config, context) {
    const { ReplicatedBackend } = await import('./replicated-backend.js');
    return ReplicatedBackend.open(config.config, { openArchive: context.openArchive, log: context.log });
  },
};
