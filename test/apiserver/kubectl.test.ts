/**
 * Debian's kubectl against `ambit lab-apiserver` run as its own process (the CLI entry point), with
 * the kubeconfig the server writes: discovery, server-side tables, get/describe/label/annotate/delete.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AUTHORIZATION_POLICY_CRD } from '../../src/lab/cluster/istio-crds.js';
import { eventually } from './helpers.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;

function ambit(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--input-type=module', '-e', ENTRY, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('lab API server with kubectl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-apiserver-kubectl-'));
  const kubeconfig = join(dir, 'out', 'kubeconfig');
  let server: ChildProcess | undefined;
  let log = '';

  const kubectl = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        'kubectl',
        ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args],
        { timeout: 30_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  const ok = async (...args: string[]): Promise<string> => {
    const r = await kubectl(...args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /error|Unhandled/i, `kubectl ${args.join(' ')} complained: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    server = ambit([
      'lab-apiserver',
      '--listen',
      '127.0.0.1:0',
      '--state-file',
      join(dir, 'state.json'),
      '--kubeconfig-out',
      kubeconfig,
    ]);
    server.stdout!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    server.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    await eventually(
      () => existsSync(kubeconfig) && /https:\/\/127\.0\.0\.1:\d+\n/.test(log),
      15000,
      `server start (${log})`,
    );
    const manifest = [
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec: {nodeName: node-a, containers: [{name: app, image: nginx}]}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: {app: db}}\nspec: {nodeName: node-b, containers: [{name: app, image: postgres}]}',
    ].join('\n---\n');
    writeFileSync(join(dir, 'objects.yaml'), manifest);
    await ok('create', '-f', join(dir, 'objects.yaml'));
  });

  after(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('the CLI wrote a kubeconfig with the server URL, CA and token', () => {
    const text = readFileSync(kubeconfig, 'utf8');
    assert.match(text, /server: https:\/\/127\.0\.0\.1:\d+/);
    assert.match(text, /certificate-authority-data: \S+/);
    assert.match(text, /token: \S+/);
  });

  test('get pods -A prints the server-side table; -o wide adds node', async () => {
    const out = await ok('get', 'pods', '-A');
    assert.match(out, /^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE/);
    assert.match(out, /shop\s+db\s+0\/1\s+Pending\s+0/);
    assert.match(out, /shop\s+web\s+0\/1\s+Pending\s+0/);
    assert.match(
      await ok('get', 'pods', '-n', 'shop', '-o', 'wide'),
      /web\s+0\/1\s+Pending\s+0\s+\S+\s+<none>\s+node-a/,
    );
  });

  test('get pod -o json returns the stored object', async () => {
    const p = JSON.parse(await ok('get', 'pod', 'web', '-n', 'shop', '-o', 'json'));
    assert.equal(p.kind, 'Pod');
    assert.equal(p.metadata.name, 'web');
    assert.equal(p.spec.nodeName, 'node-a');
    assert.match(p.metadata.uid, /^[0-9a-f-]{36}$/);
  });

  test('describe pod', async () => {
    const out = await ok('describe', 'pod', 'web', '-n', 'shop');
    assert.match(out, /^Name:\s+web$/m);
    assert.match(out, /^Namespace:\s+shop$/m);
    assert.match(out, /^Node:\s+node-a/m);
    assert.match(out, /^Status:\s+Pending$/m);
  });

  test('label a namespace, list with --show-labels and -l', async () => {
    assert.match(
      await ok('label', 'ns', 'shop', 'istio.io/dataplane-mode=ambient'),
      /namespace\/shop labeled/,
    );
    const out = await ok('get', 'ns', '--show-labels');
    assert.match(out, /^NAME\s+STATUS\s+AGE\s+LABELS/);
    assert.match(
      out,
      /shop\s+Active\s+\S+\s+istio\.io\/dataplane-mode=ambient,kubernetes\.io\/metadata\.name=shop/,
    );
    const selected = await ok('get', 'ns', '-l', 'istio.io/dataplane-mode=ambient', '-o', 'name');
    assert.equal(selected.trim(), 'namespace/shop');
    const none = await kubectl('get', 'ns', '-l', 'istio.io/dataplane-mode in (none)');
    assert.match(none.stderr, /No resources found/);
  });

  test('annotate a pod; --field-selector and -l on pods', async () => {
    assert.match(
      await ok('annotate', 'pod', 'web', '-n', 'shop', 'ambient.istio.io/redirection=enabled'),
      /pod\/web annotated/,
    );
    const p = JSON.parse(await ok('get', 'pod', 'web', '-n', 'shop', '-o', 'json'));
    assert.equal(p.metadata.annotations['ambient.istio.io/redirection'], 'enabled');
    assert.equal(
      (await ok('get', 'pods', '-A', '--field-selector', 'spec.nodeName=node-b', '-o', 'name')).trim(),
      'pod/db',
    );
    assert.equal((await ok('get', 'pods', '-n', 'shop', '-l', 'app!=web', '-o', 'name')).trim(), 'pod/db');
    const bad = await kubectl('get', 'pods', '-A', '--field-selector', 'spec.image=x');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /field label not supported: spec\.image/);
  });

  test('delete pod: a scheduled pod is Terminating until deleted with --grace-period=0 --force, then gone', async () => {
    assert.match(await ok('delete', 'pod', 'db', '-n', 'shop', '--wait=false'), /pod "db" deleted/);
    // No kubelet runs here to finish the deletion: the pod stays, marked, as on a cluster.
    assert.match(await ok('get', 'pod', 'db', '-n', 'shop'), /db\s+0\/1\s+Terminating/);
    assert.match(
      await ok('delete', 'pod', 'db', '-n', 'shop', '--grace-period=0', '--force'),
      /pod "db" force deleted/,
    );
    const gone = await kubectl('get', 'pod', 'db', '-n', 'shop');
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /pods "db" not found/);
  });

  test('kubectl apply -f a CRD, then an AuthorizationPolicy of it; get ap by short name; delete', async () => {
    const crd = join(dir, 'crd.json');
    writeFileSync(crd, JSON.stringify(AUTHORIZATION_POLICY_CRD));
    assert.match(
      await ok('apply', '-f', crd),
      /customresourcedefinition.apiextensions.k8s.io\/authorizationpolicies.security.istio.io created/,
    );
    const ap = join(dir, 'ap.yaml');
    writeFileSync(
      ap,
      [
        'apiVersion: security.istio.io/v1',
        'kind: AuthorizationPolicy',
        'metadata: {name: deny-other, namespace: shop}',
        'spec:',
        '  action: DENY',
        '  rules: [{from: [{source: {namespaces: [other]}}]}]',
        '',
      ].join('\n'),
    );
    // kubectl's discovery cache predates the CRD: it must find the new kind by asking again.
    assert.match(await ok('apply', '-f', ap), /authorizationpolicy.security.istio.io\/deny-other created/);
    assert.match(await ok('get', 'ap', '-n', 'shop'), /deny-other/);
    const obj = JSON.parse(await ok('get', 'authorizationpolicy', 'deny-other', '-n', 'shop', '-o', 'json'));
    assert.equal(obj.spec.action, 'DENY');
    assert.match(
      await ok('delete', 'ap', 'deny-other', '-n', 'shop'),
      /authorizationpolicy.security.istio.io "deny-other" deleted/,
    );
  });

  test('the CLI rejects unknown flags with exit code 2', async () => {
    const child = ambit(['lab-apiserver', '--bogus']);
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 2);
  });
});
