// Bundles the cairn command (src/cli/cairn.ts, the modules it imports, and the
// pure-JavaScript packages named in BUNDLED) into dist/src/cli/cairn.js, over
// what tsc wrote there: a few files to load instead of some ninety, which
// takes 100 ms or so off every cairn command's start (bench/NOTES.md,
// "Seventh pass"). Modules loaded on demand (each backend's implementation,
// opened by its factory) become chunks beside it, still loaded on demand.
// Other packages stay in node_modules: those with native parts (better-sqlite3,
// zstd-napi, msgpackr's optional msgpackr-extract, ours) and those only some
// backends load (the AWS SDK, ssh2). The other commands and the worker threads
// run tsc's files as they are.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BUNDLED = new Set(['commander', 'smol-toml', 'p-queue', 'eventemitter3', 'p-timeout']);

/** The package a bare import names: `@scope/name/x` -> `@scope/name`, `name/x` -> `name`. */
const packageOf = (specifier) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

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
  plugins: [{
    name: 'only-named-packages',
    setup(bundle) {
      bundle.onResolve({ filter: /^[^./]/ }, (args) => (BUNDLED.has(packageOf(args.path)) ? undefined : { path: args.path, external: true }));
    },
  }],
  // commander is CommonJS: its require() of Node's modules needs a require in an ES module.
  banner: { js: 'import { createRequire as createRequireForBundle } from "node:module"; const require = createRequireForBundle(import.meta.url);' },
  chunkNames: 'cairn-chunk-[hash]',
  sourcemap: true,
  logLevel: 'warning',
});
