#!/usr/bin/env node
// Bundles the lab's httpbin server (src/lab/cluster/httpbin.ts: GET /get, POST /post) into ONE
// CommonJS file for the `httpbin` test-app image: `node httpbin.js` listens on $PORT (default 8000,
// the lab's port) and stops on SIGTERM.
//   node scripts/lib/bundle-httpbin.mjs --outfile PATH
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const { values } = parseArgs({ options: { outfile: { type: 'string' } } });
if (!values.outfile) throw new Error('usage: bundle-httpbin.mjs --outfile PATH');
const outfile = resolve(values.outfile);

mkdirSync(dirname(outfile), { recursive: true });
await build({
  stdin: {
    contents: [
      "import { HTTPBIN_PORT, runHttpbin } from './src/lab/cluster/httpbin.ts';",
      'const port = process.env.PORT ? Number(process.env.PORT) : HTTPBIN_PORT;',
      'runHttpbin(port).then((code) => process.exit(code), (err) => {',
      "  process.stderr.write('httpbin: ' + (err && err.message ? err.message : String(err)) + '\\n');",
      '  process.exit(1);',
      '});',
    ].join('\n'),
    resolveDir: root,
    sourcefile: 'httpbin-main.ts',
    loader: 'ts',
  },
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  legalComments: 'none',
  logLevel: 'warning',
});
