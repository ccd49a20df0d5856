import { UsageError, type BackendFactory } from '../factory.js';
import { parseBlockSize } from '../units.js';
import { DEFAULT_BLOCK_SIZE, MemoryBackend, MemoryStore } from './memory-backend.js';

export const memoryFactory: BackendFactory<{ blockSize: number }> = {
  command: 'backend-fs',
  name: 'memory',
  subcommand: true,
  usage: 'backend-fs memory [BLOCK-SIZE]        a store in memory, for tests: nothing survives the process',
  parseArgs(argv) {
    if (argv.length > 1) throw new UsageError('memory takes at most one argument, the block size');
    return { blockSize: argv[0] === undefined ? DEFAULT_BLOCK_SIZE : parseBlockSize(argv[0]) };
  },
  async open(config) {
    return new MemoryBackend(new MemoryStore(config.blockSize));
  },
};
