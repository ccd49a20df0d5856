/**
 * Conformance fixtures for a proxy backend, wrapped around each kind of inner
 * archive: memory (constructed directly, clients sharing one MemoryStore),
 * fs (by identifier, in process and spawned), and a spawned backend reached
 * as a foreign command (so the proxy runs here and speaks the protocol to a
 * child process).
 */
import type { Backend } from '../../src/backends/backend.js';
import { MemoryBackend, MemoryStore } from '../../src/backends/memory/memory-backend.js';
import { ownCommandPath } from '../../src/backends/open.js';
import { OrderedBackend } from '../../src/backends/sequencer.js';
import { identifierFixtures, type FixtureFactory } from '../conformance/fixture.js';
import { backendConformance } from '../conformance/suite.js';
import { scratchDir } from './scratch.js';

export interface ProxyUnderTest {
  /** The proxy's name in test labels, e.g. "cache". */
  label: string;
  /** Wraps an inner backend in the proxy; `dir` is the fixture's scratch directory (shared by its clients). */
  wrap(inner: Backend, dir: string): Backend;
  /** The proxy's identifier around an inner identifier. */
  identifier(inner: string, dir: string): string;
}

/** An identifier that spawns our backend-fs as a foreign command (never run in process). */
export function spawnedBackendFs(args: string): string {
  return `"${process.execPath}" "${ownCommandPath('backend-fs')}" ${args}`;
}

export function quote(identifier: string): string {
  if (identifier.includes("'")) throw new Error(`cannot quote ${identifier}`);
  return `'${identifier}'`;
}

export function proxyConformance(proxy: ProxyUnderTest): void {
  const overMemory: FixtureFactory = {
    persistent: false,
    shared: true,
    async make() {
      const store = new MemoryStore();
      const scratch = scratchDir();
      return {
        open: async () => new OrderedBackend(proxy.wrap(new OrderedBackend(new MemoryBackend(store)), scratch.dir)),
        cleanup: async () => scratch.remove(),
      };
    },
  };
  const overFs = identifierFixtures((dir) => proxy.identifier(quote(`backend-fs fs ${dir}/archive`), dir));
  const overSpawned = identifierFixtures((dir) => proxy.identifier(quote(spawnedBackendFs(`fs ${dir}/archive`)), dir));

  backendConformance(`${proxy.label} over memory (in process)`, overMemory);
  backendConformance(`${proxy.label} over fs (in process)`, overFs.inProcess);
  backendConformance(`${proxy.label} over fs (spawned)`, overFs.spawned);
  backendConformance(`${proxy.label} (in process) over a spawned fs backend`, overSpawned.inProcess);
}
