// Bundles the cairn command (src/cli/cairn.ts and the modules it imports) into
// dist/src/cli/cairn.js, over what tsc wrote there: one file to load instead of
// some eighty, which takes 50-100 ms off every cairn command's start
// (bench/NOTES.md, "Seventh pass"). Modules loaded on demand (each backend's
// implementation, opened by its factory) become chunks beside it, still loaded
// on demand; packages stay outside the bundle (node_modules, as before). The
// other commands and the worker threads run tsc's files as they are.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/src/cli`;
for (const name of readdirSync(outdir)) if (name.startsWith('cairn-chunk-')) rmSync(`${outdir}/${name}`);
await build({
  entryPoints: [`${root}src/cli/cairn.ts`],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'cairn-chunk-[hash]',
  sourcemap: true,
  logLevel: 'warning',
});
