/**
 * `ambit demo --kubernetes` as a user runs it: every step of the seed's walkthrough holds on the real
 * cluster (images, scripts/k8s up, helm install, enrollment, inpod logs, sockets, rules, a request,
 * the capture, the access log), then helm uninstall and scripts/k8s down leave no cluster behind.
 * Runs only with `npm run test:k8s` (root; takes the machine's single cluster).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const AMBIT = fileURLToPath(new URL('../../../bin/ambit', import.meta.url));
const K8S = fileURLToPath(new URL('../../../scripts/k8s', import.meta.url));

describe('ambit demo --kubernetes', () => {
  after(() => {
    spawnSync(K8S, ['down'], { stdio: 'ignore' });
  });

  test('walks through the seed on a real cluster and removes it afterwards', async (t) => {
    spawnSync(K8S, ['down'], { stdio: 'ignore' });
    const t0 = Date.now();
    const child = spawn(AMBIT, ['demo', '--kubernetes'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    t.diagnostic(`ambit demo --kubernetes: ${((Date.now() - t0) / 1000).toFixed(1)} s, exit ${code}`);
    assert.equal(code, 0, `demo failed:\n${out.slice(-6000)}\n${err.slice(-3000)}`);
    for (const step of [
      '== Step 1: Build the images ==',
      '== Step 2: Bring up a single-node Kubernetes cluster ==',
      '== Step 3: helm install ambit ==',
      '== Step 5: Check the ztunnel proxy logs ==',
      '== Step 6: Confirm the state of sockets ==',
      '== Step 7: Check the iptables rules setup ==',
      '== Step 9: Prove it crossed the wire encrypted ==',
      '== Step 10: Read the access log ==',
      'Demo finished: every step held.',
    ])
      assert.ok(out.includes(step), `no '${step}' in the output`);
    // what the user sees matches the seed: the listeners, the rules, the annotation, TLS on 15008
    assert.match(out, /LISTEN .*[*:]15008 .*users:\(\("ztunnel"/);
    assert.match(out, /-A ISTIO_PRERT -p tcp -m tcp --dport 15008 .*-j TPROXY --on-port 15008/);
    assert.match(out, /sleep-\S+\s+enabled/);
    assert.match(out, /> \S+:15008 .* TLS \{.*"application_data"/);
    assert.match(out, /release "ambit" uninstalled/);
    // and nothing is left running
    const status = spawnSync(K8S, ['status'], { encoding: 'utf8' });
    assert.notEqual(status.status, 0, 'scripts/k8s status reports the cluster down');
    assert.match(status.stdout, /netns\s+absent/);
    assert.ok(!existsSync('/var/run/netns/ambit-k8s-node'));
  });
});
