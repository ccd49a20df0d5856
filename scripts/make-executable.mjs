// Marks the built command-line entry points executable (tsc does not).
import { chmodSync, readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
// bin/cairn is a shell launcher of dist/src/cli/cairn.js, which stays runnable by itself.
for (const file of [...Object.values(pkg.bin), 'dist/src/cli/cairn.js']) chmodSync(new URL(`../${file}`, import.meta.url), 0o755);
