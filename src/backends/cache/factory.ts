import { UsageError, type BackendFactory } from '../factory.js';
import { redactIdentifier } from '../../protocol/identifier.js';
import { parseProxyArgs } from '../proxy-args.js';

export interface CacheConfig {
  cacheFile: string;
  inner: string;
}

export const cacheFactory: BackendFactory<CacheConfig> = {
  command: 'backend-cache',
  name: 'cache',
  subcommand: false,
  usage: "backend-cache CACHEFILE 'INNER'      answer exists from a SQLite cache of the keys known to be in INNER",
  parseArgs(argv) {
    const { positional } = parseProxyArgs(argv, { values: [] });
    if (positional.length !== 2 || positional[0] === '' || (positional[1] as string).trim() === '') {
      throw new UsageError("backend-cache takes two arguments: the cache file and the inner archive identifier, quoted as one word");
    }
    return { cacheFile: positional[0] as string, inner: positional[1] as string };
  },
  async open(config, context) {
    const { CacheBackend } = await import('./cache-backend.js');
    const inner = await context.openArchive(config.inner);
    try {
      return new CacheBackend(inner, config.cacheFile, { innerLabel: redactIdentifier(config.inner), log: context.log });
    } catch (err) {
      await inner.close().catch(() => undefined);
      throw err;
    }
  },
};
