/**
 * Runs the conformance suite against every store and proxy, in process and
 * spawned. Adding a backend is one line here.
 */
import { MemoryBackend, MemoryStore } from '../src/backends/memory/memory-backend.js';
import { OrderedBackend } from '../src/backends/sequencer.js';
import { identifierFixtures, type FixtureFactory } from './conformance/fixture.js';
import { backendConformance } from './conformance/suite.js';

/** In-process memory: clients share one MemoryStore, so the shared-archive tests apply. */
const sharedMemory: FixtureFactory = {
  persistent: false,
  shared: true,
  async make() {
    const store = new MemoryStore();
    return { open: async () => new OrderedBackend(new MemoryBackend(store)), cleanup: async () => undefined };
  },
};

const fs = identifierFixtures((dir) => `backend-fs fs ${dir}/archive`);
const spawnedMemory = identifierFixtures(() => 'backend-fs memory', { persistent: false, shared: false });

backendConformance('memory (in process)', sharedMemory);
backendConformance('memory (spawned)', spawnedMemory.spawned);
backendConformance('fs (in process)', fs.inProcess);
backendConformance('fs (spawned)', fs.spawned);
