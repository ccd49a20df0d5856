/**
 * For the compaction crash test: opens IDENTIFIER in process, prints
 * `compacting`, runs admin `compact 10`, prints `done`.
 *
 *     node splitlog-compact-child.js IDENTIFIER
 */
import { openArchive } from '../../src/backends/open.js';

const backend = await openArchive(process.argv[2] as string, { spawnOwn: false, onLog: () => undefined });
process.stdout.write('compacting\n');
await backend.admin('compact', ['10']);
process.stdout.write('done\n');
await backend.close();
