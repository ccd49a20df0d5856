import type { Backend } from '../../src/backends/backend.js';
import { openArchive } from '../../src/backends/open.js';
import { scratchDir } from '../support/scratch.js';

/** One archive under test. Each conformance test makes a fresh one. */
export interface ConformanceFixture {
  /** Opens a client of the archive. With `shared`, several open clients reach the same archive. */
  open(): Promise<Backend>;
  cleanup(): Promise<void>;
}

/** Makes fresh fixtures of one kind of archive, and says what that kind can do. */
export interface FixtureFactory {
  make(): Promise<ConformanceFixture>;
  /** The archive survives close and a new open. */
  persistent: boolean;
  /** Several clients may have it open at once and see each other's work. */
  shared: boolean;
}

export interface IdentifierFixtureOptions {
  persistent?: boolean;
  shared?: boolean;
  /** Runs before each fixture (e.g. to start a server); returns the context for the identifier. */
  setup?: (dir: string) => Promise<void>;
}

/**
 * The two fixtures of one identifier: opened in this process, and spawned as
 * a child process speaking the protocol (conventions.md, 7).
 */
export function identifierFixtures(
  makeIdentifier: (dir: string) => string,
  options: IdentifierFixtureOptions = {},
): { inProcess: FixtureFactory; spawned: FixtureFactory } {
  const make = (spawnOwn: boolean): FixtureFactory => ({
    persistent: options.persistent ?? true,
    shared: options.shared ?? true,
    async make() {
      const scratch = scratchDir();
      await options.setup?.(scratch.dir);
      const identifier = makeIdentifier(scratch.dir);
      return {
        open: () => openArchive(identifier, { spawnOwn, onLog: () => undefined }),
        cleanup: async () => scratch.remove(),
      };
    },
  });
  return { inProcess: make(false), spawned: make(true) };
}
