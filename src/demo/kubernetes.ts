/**
 * `ambit demo --kubernetes`: the seed on a real single-node Kubernetes cluster (scripts/k8s: real
 * kube-apiserver, kubelet, containerd, kube-proxy), installed with Helm from deploy/charts/ambit.
 * The same walkthrough as the lab demo, with the commands a Kubernetes user types: kubectl, helm,
 * and `ip netns exec` into the pod's runtime netns for what kubectl cannot show.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AmbitError } from '../errors.js';
import { startCapture } from '../lab/capture.js';
import { execIn, sh } from '../lab/system.js';
import { INBOUND_HBONE_PORT as HBONE_PORT, PROBE_SNAT_V4 } from '../node/contract.js';
import { createRedirector } from '../redirect/index.js';
import { DEMO_NAMESPACE, REDIRECTION_ANNOTATION } from './cluster.js';
import {
  CHART,
  CHECKOUT,
  isReady,
  K8sCluster,
  type KubeObject,
  SYSTEM_NAMESPACE,
  script,
  waitFor,
} from './k8s-cluster.js';
import { readPcap, streamsOf } from './pcap.js';
import { expect, type Walkthrough } from './walkthrough.js';

const HTTPBIN_PORT = 8000;
const VERSION: string = JSON.parse(readFileSync(join(CHECKOUT, 'package.json'), 'utf8')).version;
const IMAGES = ['ambit', 'sleep', 'httpbin'].map((n) =>
  join(CHECKOUT, 'dist', 'images', `${n}-${VERSION}.oci.tar`),
);

/** A Deployment of one pod of `app` (image localhost/ambit/<image>) with its own service account. */
function deployment(app: string, image: string, container: string, grace: number): string {
  return `
apiVersion: v1
kind: ServiceAccount
metadata: {name: ${app}, namespace: ${DEMO_NAMESPACE}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${app}, namespace: ${DEMO_NAMESPACE}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${app}}}
  template:
    metadata: {labels: {app: ${app}}}
    spec:
      serviceAccountName: ${app}
      terminationGracePeriodSeconds: ${grace}
      containers:
      - name: ${app}
        image: localhost/ambit/${image}:${VERSION}
        imagePullPolicy: Never
${container}`;
}

/** sleep and httpbin (liveness and readiness probes every second) in the demo namespace. */
export const DEMO_APPS = [
  deployment(
    'httpbin',
    'httpbin',
    // The kubelet probes from the node: once enrolled, they are SNATed to the probe address on the
    // node and the pod's rules let that source through untouched.
    `        ports: [{containerPort: ${HTTPBIN_PORT}}]
        readinessProbe: {httpGet: {path: /get, port: ${HTTPBIN_PORT}}, periodSeconds: 1, failureThreshold: 2}
        livenessProbe: {httpGet: {path: /get, port: ${HTTPBIN_PORT}}, periodSeconds: 1, failureThreshold: 2}`,
    5,
  ),
  `
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: ${DEMO_NAMESPACE}, labels: {app: httpbin}}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: ${HTTPBIN_PORT}}]`,
  deployment('sleep', 'sleep', '', 0),
].join('\n---\n');

/** The one running pod of an app in the demo namespace. */
export function appPod(k: K8sCluster, app: string): KubeObject {
  const pods = k.pods(DEMO_NAMESPACE, `app=${app}`).filter((p) => !p.metadata.deletionTimestamp);
  expect(pods.length === 1, `one ${app} pod in ${DEMO_NAMESPACE} (found ${pods.length})`);
  return pods[0];
}

const enrolled = (p: KubeObject) => p?.metadata?.annotations?.[REDIRECTION_ANNOTATION] === 'enabled';

function ztunnelPod(k: K8sCluster): KubeObject {
  const pods = k.pods(SYSTEM_NAMESPACE, 'app=ztunnel').filter((p) => !p.metadata.deletionTimestamp);
  expect(pods.length === 1, 'one ztunnel pod on the node');
  return pods[0];
}

/** curl in the sleep pod; its JSON answer. */
export async function curlFromSleep(k: K8sCluster, args: string[]): Promise<KubeObject> {
  const sleep = appPod(k, 'sleep');
  const out = await k.kubectlAsync(
    ...['-n', DEMO_NAMESPACE, 'exec', sleep.metadata.name, '--', 'curl', '-sS', '--max-time', '10', ...args],
  );
  return JSON.parse(out);
}

/**
 * POSTs `body` from sleep to `url` while capturing TCP on sleep's eth0 (the capture keeps draining
 * while curl runs); httpbin's echo and the capture, or the request's error once the capture stopped.
 */
export async function postCaptured(
  k: K8sCluster,
  sleepNetns: string,
  url: string,
  body: string,
): Promise<{ echo: KubeObject; pcap: Buffer }> {
  const capture = await startCapture(sleepNetns, 'eth0', 'tcp');
  const answer = await curlFromSleep(k, ['-H', 'content-type: text/plain', '--data-binary', body, url]).then(
    (echo) => ({ echo, error: undefined }),
    (error: unknown) => ({ echo: undefined, error }),
  );
  const pcap = await capture.stop();
  if (answer.error !== undefined) throw answer.error;
  return { echo: answer.echo, pcap };
}

/** Runs the walkthrough; the cluster stays up (the caller removes it unless --keep). */
export async function kubernetesWalkthrough(w: Walkthrough): Promise<K8sCluster> {
  await w.step(
    'Build the images',
    'One image for every ambit component (agent, ztunnel, control plane, CNI installer), and the sleep ' +
      'and httpbin apps, assembled offline from Debian packages and this checkout: OCI archives, no registry.',
    async () => {
      w.command('scripts/build-image --all');
      const out = sh(script('build-image'), ['--all']);
      w.output(
        out
          .split('\n')
          .filter((l) => l.startsWith('localhost/'))
          .join('\n'),
      );
      for (const f of IMAGES) expect(existsSync(f), `${f} was built`);
    },
  );

  const k = await w.step(
    'Bring up a single-node Kubernetes cluster',
    'Kubernetes v1.34.4 built from the Go module proxy (the first time takes minutes), etcd, containerd, ' +
      'the reference CNI bridge plugin and kube-proxy, in a network namespace of this machine; the images ' +
      "are imported into the node's containerd.",
    async () => {
      w.command(`scripts/k8s up ${IMAGES.map((f) => `--image ${f.replace(CHECKOUT, '')}`).join(' ')}`);
      const cluster = K8sCluster.up(IMAGES);
      w.output(cluster.kubectl('get', 'nodes', '-o', 'wide'));
      return cluster;
    },
  );

  await w.step(
    'helm install ambit',
    'The control plane (istiod: CA and workload xDS on 15012), the node agent DaemonSet ambit-cni-node ' +
      '(CNI installer + istio-cni node agent) and the ztunnel DaemonSet, into istio-system.',
    async () => {
      const values = k.chartValues();
      w.command(
        `helm install ambit deploy/charts/ambit -n ${SYSTEM_NAMESPACE} --create-namespace ${values.join(' ')}`,
      );
      k.helm('install', 'ambit', CHART, '-n', SYSTEM_NAMESPACE, '--create-namespace', ...values);
      await waitFor('istiod, ambit-cni-node and ztunnel Ready', () => {
        const items: KubeObject[] = k.json('-n', SYSTEM_NAMESPACE, 'get', 'deploy,ds').items;
        const by = (n: string) => items.find((i) => i.metadata.name === n);
        return (
          by('istiod')?.status?.readyReplicas === 1 &&
          by('ambit-cni-node')?.status?.numberReady === 1 &&
          by('ztunnel')?.status?.numberReady === 1
        );
      });
      w.command(`kubectl -n ${SYSTEM_NAMESPACE} get pods`);
      w.output(k.kubectl('-n', SYSTEM_NAMESPACE, 'get', 'pods'));
    },
  );

  await w.step(
    `Deploy sleep and httpbin in namespace ${DEMO_NAMESPACE}, then label it for ambient`,
    "As in the ztunnel L4 networking guide. The node agent sees the label, enters each running pod's " +
      'network namespace, installs the redirection rules and hands ztunnel the namespace; ztunnel opens ' +
      'its listeners inside the pod, and the pod is annotated.',
    async () => {
      k.kubectl('create', 'namespace', DEMO_NAMESPACE);
      await waitFor(`${DEMO_NAMESPACE}/default service account`, () =>
        k.kubectl('-n', DEMO_NAMESPACE, 'get', 'sa', 'default').includes('default'),
      );
      k.kubectlIn(DEMO_APPS, 'apply', '-f', '-');
      await waitFor('sleep and httpbin Ready', () =>
        ['sleep', 'httpbin'].every((a) => k.pods(DEMO_NAMESPACE, `app=${a}`).some(isReady)),
      );
      w.command(`kubectl label namespace ${DEMO_NAMESPACE} istio.io/dataplane-mode=ambient`);
      k.kubectl('label', 'namespace', DEMO_NAMESPACE, 'istio.io/dataplane-mode=ambient');
      await waitFor(
        'sleep and httpbin annotated',
        () => enrolled(appPod(k, 'sleep')) && enrolled(appPod(k, 'httpbin')),
      );
      w.command(
        `kubectl -n ${DEMO_NAMESPACE} get pods -o custom-columns=NAME:.metadata.name,REDIRECTION:.metadata.annotations.ambient\\.istio\\.io/redirection`,
      );
      w.output(
        k.kubectl(
          ...['-n', DEMO_NAMESPACE, 'get', 'pods'],
          '-o',
          'custom-columns=NAME:.metadata.name,REDIRECTION:.metadata.annotations.ambient\\.istio\\.io/redirection',
        ),
      );
    },
  );

  await w.step(
    'Check the ztunnel proxy logs',
    "In-pod mode is on, and ztunnel received each pod's network namespace and started proxying for it.",
    async () => {
      w.command(`kubectl -n ${SYSTEM_NAMESPACE} logs ds/ztunnel | grep inpod`);
      const lines = k
        .kubectl('-n', SYSTEM_NAMESPACE, 'logs', 'ds/ztunnel')
        .split('\n')
        .filter((l) => l.includes('inpod'));
      w.output(lines.join('\n'));
      const text = lines.join('\n');
      for (const want of ['inpod_enabled: true', 'inpod_port_reuse: true', 'inpod_mark: 1337'])
        expect(text.includes(want), `ztunnel logged no '${want}'`);
      for (const app of ['sleep', 'httpbin']) {
        const uid = appPod(k, app).metadata.uid;
        expect(
          text.includes(`pod WorkloadUid("${uid}") received netns, starting proxy`),
          `${app}'s netns received`,
        );
      }
    },
  );

  const sleepNetns = k.podNetns(appPod(k, 'sleep'));
  await w.step(
    'Confirm the state of sockets',
    "15001, 15006 and 15008 listen inside the sleep pod's network namespace, owned by the ztunnel " +
      "process of the node (not by anything in the pod). kubectl cannot show this; the runtime's netns can:",
    async () => {
      w.command(`ip netns exec ${sleepNetns} ss -ntlp`);
      const ss = execIn(sleepNetns, 'ss', ['-ntlp']);
      w.output(ss);
      const zpid = k.containerPid(ztunnelPod(k));
      for (const port of [15001, 15006, 15008]) {
        const line = ss.split('\n').find((l) => new RegExp(`[*:]${port}\\s`).test(l));
        expect(
          line?.includes(`pid=${zpid},`),
          `*:${port} is owned by ztunnel (pid ${zpid}): ${line ?? 'no listener'}`,
        );
      }
    },
  );

  await w.step(
    'Check the iptables rules setup',
    'Istio chains in mangle and nat: inbound TCP to ztunnel (plaintext to 15006, HBONE to 15008), ' +
      `outbound TCP to 15001, and the kubelet's probes (SNATed to ${PROBE_SNAT_V4} on the node) let through.`,
    async () => {
      w.command(`ip netns exec ${sleepNetns} iptables-save`);
      w.output(execIn(sleepNetns, 'iptables-save', []));
      const sleep = appPod(k, 'sleep');
      const r = await createRedirector({ backend: 'iptables', inbound: 'tproxy', dnsCapture: true }).verify(
        `/var/run/netns/${sleepNetns}`,
        [sleep.status.podIP],
      );
      expect(
        r.ok,
        `the seed's ruleset: missing ${r.missing.join('; ')} unexpected ${r.unexpected.join('; ')}`,
      );
      w.line("(exactly the seed's ruleset)");
    },
  );

  await w.step(
    'Send a request from sleep to httpbin, by Service',
    'curl in the sleep pod knows nothing of the mesh; httpbin sees the request come from sleep.',
    async () => {
      const ip = k.kubectl('-n', DEMO_NAMESPACE, 'get', 'svc', 'httpbin', '-o', 'jsonpath={.spec.clusterIP}');
      w.command(`kubectl -n ${DEMO_NAMESPACE} exec deploy/sleep -- curl -sS http://${ip}:8000/get`);
      const get = await curlFromSleep(k, [`http://${ip}:8000/get`]);
      w.output(JSON.stringify(get, null, 2));
      expect(
        get.origin === appPod(k, 'sleep').status.podIP,
        `httpbin saw ${get.origin}, not sleep's address`,
      );
    },
  );

  await w.step(
    'Prove it crossed the wire encrypted',
    "A capture on sleep's eth0 during a request with a unique body: every packet is to or from 15008, " +
      'the payload is TLS records, and the body is nowhere in plain text.',
    async () => {
      const httpbin = appPod(k, 'httpbin');
      const marker = `ambit-demo-${randomBytes(8).toString('hex')}`;
      w.command(`ip netns exec ${sleepNetns} tcpdump -i eth0 -w - tcp   # during the request`);
      const { echo, pcap } = await postCaptured(
        k,
        sleepNetns,
        `http://${httpbin.status.podIP}:${HTTPBIN_PORT}/post`,
        marker,
      );
      expect(echo.data === marker, 'httpbin echoed the body');
      const { segments } = readPcap(pcap);
      const stray = segments.filter((s) => s.srcPort !== HBONE_PORT && s.dstPort !== HBONE_PORT);
      expect(
        segments.length > 0 && stray.length === 0,
        `${stray.length} packet(s) not to or from ${HBONE_PORT}`,
      );
      for (const s of streamsOf(segments).filter((x) => x.bytes > 0)) {
        w.output(
          `${s.from}:${s.fromPort} > ${s.to}:${s.toPort}  ${s.bytes} bytes  TLS ${JSON.stringify(s.tls)}`,
        );
        expect(s.tls, `${s.from}:${s.fromPort} > ${s.to}:${s.toPort} is not TLS`);
      }
      expect(!pcap.includes(marker), 'the body is in the capture in plain text');
      w.line(`the body (${marker}) is not in the capture`);
    },
  );

  await w.step(
    'Read the access log',
    "ztunnel logs each connection with the peer identities from the control plane's certificates.",
    async () => {
      w.command(`kubectl -n ${SYSTEM_NAMESPACE} logs ds/ztunnel | grep 'connection complete'`);
      const lines = k
        .kubectl('-n', SYSTEM_NAMESPACE, 'logs', 'ds/ztunnel')
        .split('\n')
        .filter((l) => l.includes('connection complete'));
      w.output(lines.slice(-4).join('\n'));
      expect(
        lines.some((l) => l.includes(`spiffe://cluster.local/ns/${DEMO_NAMESPACE}/sa/sleep`)),
        "no access line names sleep's identity",
      );
    },
  );

  return k;
}

/** helm uninstall (the pods keep running, unmeshed) and scripts/k8s down. */
export async function kubernetesTeardown(w: Walkthrough): Promise<void> {
  let k: K8sCluster | undefined;
  try {
    k = new K8sCluster();
  } catch {
    k = undefined;
  }
  if (k && existsSync(k.env['AMBIT_K8S_KUBECONFIG'] ?? '')) {
    w.command(`helm uninstall ambit -n ${SYSTEM_NAMESPACE} --wait`);
    try {
      w.output(k.helm('uninstall', 'ambit', '-n', SYSTEM_NAMESPACE, '--wait', '--timeout', '180s'));
    } catch (err) {
      w.line(`(helm uninstall: ${(err as AmbitError).message})`);
    }
  }
  w.command('scripts/k8s down');
  K8sCluster.down();
  w.line('cluster removed');
}
