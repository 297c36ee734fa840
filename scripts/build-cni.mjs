#!/usr/bin/env node
// Bundles the CNI plugin into ONE executable file: CommonJS, so it runs from any directory without a
// package.json (a node's CNI bin dir), a node shebang, mode 0755.
//   node scripts/build-cni.mjs [--outfile PATH]      (default dist/ambit-cni)
// The bundle is written as PATH.cjs and PATH is a symlink to it: in the checkout the nearest
// package.json says "type": "module", under which Node would load an extension-less PATH as ESM and
// the CommonJS bundle would fail (`require is not defined`); through the link Node sees `.cjs`. Whoever
// copies PATH (cni-install, `cp`) copies the bundle itself, which a bin dir without package.json runs
// as CommonJS.
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { values } = parseArgs({ options: { outfile: { type: 'string' } } });
const outfile = resolve(values.outfile ?? join(root, 'dist', 'ambit-cni'));
const bundle = `${outfile}.cjs`;

mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [join(root, 'src', 'cni', 'plugin', 'main.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  legalComments: 'none',
  logLevel: 'warning',
});
chmodSync(bundle, 0o755);
rmSync(outfile, { force: true });
symlinkSync(basename(bundle), outfile);
