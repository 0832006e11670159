/**
 * Bundles the controller process (dist/src/main.js and everything it imports) into one
 * ES module, dist/controller/main.js: what the image runs.
 *
 * Why: V8 keeps the source text of every loaded module in the heap (functions compile
 * lazily from it), and @kubernetes/client-node alone loads about 730 modules, 16 MB of
 * source for its generated models and APIs, of which the controller calls a handful. A
 * tree-shaken bundle without comments or indentation is 6 MB, and the process starts at
 * about half the RSS (docs/bench/heap-profile-2026-11-30.md). Packages' ES module builds
 * are preferred (`module` before `main`): the AWS SDK's tree-shake far better than its
 * CommonJS ones.
 *
 * Names are kept (no identifier minification): stack traces stay readable without a
 * source map, and logs that print an error's class name (`err.type`) print the real one.
 * The source map is written next to the bundle but not loaded by default: with one bundle,
 * `--enable-source-maps` decodes the whole 5 MB map at the first stack trace, about
 * 80 MB of heap for as long as the process lives. Set NODE_OPTIONS=--enable-source-maps
 * to have it while debugging.
 *
 * `npm run build` runs it after tsc.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'dist', 'controller');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, 'dist', 'src', 'main.js')],
  outfile: join(out, 'main.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  mainFields: ['module', 'main'],
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  legalComments: 'none',
  // The map names the files without carrying their text.
  sourcemap: true,
  sourcesContent: false,
  // Some dependencies are CommonJS and require() Node built-ins; an ES module bundle has
  // no `require` unless we make one.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
