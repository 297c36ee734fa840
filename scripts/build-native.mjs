// Builds native/ (the N-API addon) with the node-gyp that ships with npm, against the local Node
// headers: the machine has no route to nodejs.org, so headers must never be downloaded.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nodeDir = [join(dirname(process.execPath), '..'), '/usr', '/usr/local'].find((d) =>
  existsSync(join(d, 'include', 'node', 'node_api.h')),
);
if (!nodeDir) {
  console.error(
    'ambit: Node.js headers (include/node/node_api.h) not found; install the nodejs headers package',
  );
  process.exit(1);
}

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  return candidates.find((c) => c && existsSync(c));
}

const gyp = findNodeGyp();
if (!gyp) {
  console.error('ambit: node-gyp not found (it ships with npm); reinstall npm');
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  [gyp, 'rebuild', `--nodedir=${nodeDir}`, '--directory', join(root, 'native')],
  {
    stdio: 'inherit',
  },
);
process.exit(r.status ?? 1);
