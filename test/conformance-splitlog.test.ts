/**
 * The conformance suite, unchanged, against the splitlog store: in process,
 * spawned, and with a tiny log size limit so that rollover happens all the time.
 */
import { identifierFixtures } from './conformance/fixture.js';
import { backendConformance } from './conformance/suite.js';

const splitlog = identifierFixtures((dir) => `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite`);
const tinyLogs = identifierFixtures((dir) => `backend-fs splitlog ${dir}/logs ${dir}/meta.sqlite 200000`);

backendConformance('splitlog (in process)', splitlog.inProcess);
backendConformance('splitlog (spawned)', splitlog.spawned);
backendConformance('splitlog, 200000-byte logs (in process)', tinyLogs.inProcess);
