#!/usr/bin/env node
// Runs the compiled test files with Node's built-in test runner. Unit tests (dist/test/**) and, as
// root, the real-kernel tests (dist/test/*/e2e/**); with --k8s only the real-cluster tests
// (dist/test/k8s/**, which bring up scripts/k8s), which are otherwise left out. Afterwards sweeps any `ambit-t-*` network
// namespace a failed test left behind and fails the run if there were some.
// Output: scripts/test-reporter.mjs, a line per top-level test, failures in full with the last lines
// of what their file printed, and the counts; everything the test files print (component logs) goes
// to one file per test file in /tmp/ambit-test-logs-<run>/, kept when the run fails. --verbose: Node's
// spec reporter with all output on the terminal, as before.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const verbose = args.includes('--verbose');
const k8sOnly = args.includes('--k8s');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

let files = walk(join(root, 'dist', 'test')).sort();
const isRoot = process.getuid?.() === 0;
// dist/test/k8s/** runs a real Kubernetes node (scripts/k8s): only with --k8s, never by default.
const k8sDir = join(root, 'dist', 'test', 'k8s') + '/';
files = k8sOnly ? files.filter((f) => f.startsWith(k8sDir)) : files.filter((f) => !f.startsWith(k8sDir));
if (unitOnly) files = files.filter((f) => !f.includes('/e2e/'));
else if (!isRoot) {
  console.error(
    'ambit tests: the e2e tests need root (network namespaces, netfilter); run as root or use npm run test:unit',
  );
  process.exit(1);
}
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('ambit tests: no test files found (did the build run?)');
  process.exit(1);
}

// The k8s files share the machine's single cluster (each brings scripts/k8s up and down): one at a time.
const concurrency = process.env.AMBIT_TEST_CONCURRENCY ?? (k8sOnly ? '1' : '4');
// Every test namespace of this run is named ambit-t-<runId>..., so the sweep below never touches
// another run's namespaces.
const runId = randomBytes(2).toString('hex');
const logDir = mkdtempSync(join(tmpdir(), `ambit-test-logs-${runId}-`));
const reporter = verbose
  ? ['--test-reporter=spec']
  : [`--test-reporter=${join(root, 'scripts', 'test-reporter.mjs')}`, '--test-reporter-destination=stdout'];
const r = spawnSync(
  process.execPath,
  ['--test', ...reporter, `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...files],
  { stdio: 'inherit', cwd: root, env: { ...process.env, AMBIT_TEST_RUN: runId, AMBIT_TEST_LOG_DIR: logDir } },
);
// The logs explain failures; a run that passed needs none of them.
if (r.status === 0) rmSync(logDir, { recursive: true, force: true });

let leaked = [];
if (isRoot) {
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  leaked = list
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n?.startsWith(`ambit-t-${runId}`));
  for (const ns of leaked) spawnSync('ip', ['netns', 'del', ns]);
  if (leaked.length)
    console.error(`ambit tests: removed ${leaked.length} leaked test namespace(s): ${leaked.join(' ')}`);
}
process.exit(r.status !== 0 ? (r.status ?? 1) : leaked.length ? 1 : 0);
