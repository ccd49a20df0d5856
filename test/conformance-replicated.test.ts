/**
 * The conformance suite against a replicated backend of three fs members
 * (trust 50% each, so every block is on two), in process and spawned.
 */
import { identifierFixtures } from './conformance/fixture.js';
import { backendConformance } from './conformance/suite.js';
import { replicatedIdentifier, setUpReplica, THREE_HALVES } from './support/replica-fixtures.js';

const replicated = identifierFixtures(replicatedIdentifier, {
  setup: async (dir) => {
    await setUpReplica(dir, THREE_HALVES);
  },
});

backendConformance('replicated over three fs members (in process)', replicated.inProcess);
backendConformance('replicated over three fs members (spawned)', replicated.spawned);
