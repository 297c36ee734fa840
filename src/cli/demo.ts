/**
 * `ambit demo`: the seed, runnable. Brings up a two-node lab cluster, puts sleep and httpbin in the
 * ambient-demo namespace, labels it for ambient, then walks through the seed's observing and
 * debugging checks, asserting each one. Non-interactive; removes the lab afterwards unless --keep.
 */

import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  addPods,
  bringUpCluster,
  DEMO_NAMESPACE,
  type DemoCluster,
  labelAmbient,
  removeLeftover,
  waitEnrolled,
} from '../demo/cluster.js';
import { demoError } from '../demo/errors.js';
import { CHECKOUT, script } from '../demo/k8s-cluster.js';
import { kubernetesTeardown, kubernetesWalkthrough } from '../demo/kubernetes.js';
import { checkDemoPrerequisites } from '../demo/prerequisites.js';
import { accessLog, doctor, encrypted, inpodLogs, request, rules, sockets } from '../demo/steps.js';
import { Walkthrough } from '../demo/walkthrough.js';
import { clusterDown } from '../lab/cluster/index.js';
import type { IpFamily, PrimaryCni } from '../lab/index.js';
import { checkLabName } from '../lab/names.js';
import { ambitCommand } from '../runtime/invocation.js';
import { type Command, EXIT_OK, UsageError } from './command.js';
import { ipFamilyOption, primaryCniOption } from './network-options.js';

const DEFAULT_NAME = 'demo';

const HELP = `Usage: ambit demo [--keep] [--name NAME] [--ip-family ipv4|ipv6|dual] [--primary-cni NAME]
       ambit demo --kubernetes [--keep]

The seed ("ztunnel traffic redirection"), step by step on a local lab cluster:
  - removes a lab NAME left by an earlier run, brings up a two-node lab cluster (API server,
    control plane, and per node the agent, ztunnel and a kubelet stand-in);
  - creates namespace ${DEMO_NAMESPACE} with pods sleep (client, on n1) and httpbin (:8000, on n2),
    labels it istio.io/dataplane-mode=ambient and waits until both pods are enrolled;
  - shows and checks: ztunnel's inpod log lines, the four listeners in the sleep pod, its
    iptables rules, a request from sleep to httpbin, a capture proving it crossed the wire as
    TLS to 15008, both ztunnels' access log lines with the peer identities, and ambit doctor.
Exits non-zero naming the step whose check did not hold. Needs root.

With --kubernetes, the same walkthrough on a real single-node Kubernetes cluster of this checkout
(scripts/k8s: kube-apiserver, kubelet, containerd, kube-proxy; the first run builds Kubernetes
from the Go module proxy, ~8 min on 2 cores): builds the images, helm-installs deploy/charts/ambit,
deploys sleep and httpbin, labels the namespace, and checks the same things with kubectl; then
helm uninstall and scripts/k8s down. One such cluster per machine.

Options:
  --kubernetes   on a real Kubernetes cluster instead of the embedded lab
  --keep         leave the lab (or cluster) running afterwards, to explore it (otherwise it is
                 removed, also on failure)
  --name NAME    lab name (default ${DEFAULT_NAME})
  --ip-family F  the lab's IP family (as 'ambit lab up'): ipv4 (default), ipv6 or dual; with ipv6 or
                 dual the request, the capture and the rules shown are IPv6
  --primary-cni P  the reference plugin that attaches the pods (as 'ambit lab up'): bridge (default),
                 ptp, ipvlan or macvlan; ambit's plugin is chained after it either way
  -h, --help
`;

/** The seed's starting point and its walkthrough; resolves once every step held. */
async function walkthrough(
  lab: string,
  w: Walkthrough,
  network: { ipFamily?: IpFamily; primaryCni?: PrimaryCni },
): Promise<DemoCluster> {
  const layout = await w.step(
    'Bring up a two-node lab cluster',
    'The lab API server, the control plane (CA + xDS), and on each node the istio-cni node agent, ' +
      'the ztunnel node proxy and a kubelet stand-in: every node is a network namespace on this machine.',
    () => bringUpCluster(lab, network),
  );
  w.line(`kubeconfig: ${layout.kubeconfig}`);

  const pods = await w.step(
    `Deploy sleep and httpbin in namespace ${DEMO_NAMESPACE}`,
    'As in the ztunnel L4 networking guide: a sleep client on n1, an httpbin server (port 8000) on n2. ' +
      'The namespace is not in the mesh yet, so they start as ordinary pods.',
    async () => {
      const added = await addPods(lab);
      for (const p of [added.sleep, added.httpbin]) {
        w.output(`pod ${p.ref.namespace}/${p.ref.name}  node ${p.node}  ip ${p.ip}  netns ${p.netns}`);
      }
      return added;
    },
  );
  const cluster: DemoCluster = { lab, layout, ...pods };

  await w.step(
    `Label ${DEMO_NAMESPACE} for ambient mode`,
    'The istio-cni node agent watches the API server for the ambient label on a namespace. For each ' +
      "running pod it enters the pod's network namespace, installs the redirection rules, and hands " +
      'ztunnel a file descriptor of that namespace over a Unix domain socket; ztunnel opens its ' +
      'listeners inside the pod. Then the pod is annotated and is in the mesh.',
    async () => {
      w.command(
        `kubectl --kubeconfig ${layout.kubeconfig} label namespace ${DEMO_NAMESPACE} istio.io/dataplane-mode=ambient`,
      );
      await labelAmbient(lab);
      await waitEnrolled(lab, [cluster.sleep, cluster.httpbin]);
      w.line('sleep and httpbin: ambient.istio.io/redirection: enabled');
    },
  );

  await w.step(
    'Check the ztunnel proxy logs',
    'The ztunnel logs related to inpod show that in-pod redirection mode is enabled, that the proxy ' +
      "received the pod's network namespace, and that it started proxying for it.",
    async () => inpodLogs(cluster, w),
  );
  await w.step(
    'Confirm the state of sockets',
    "The sockets on ports 15001, 15006 and 15008 (and ztunnel's 127.0.0.1:15080) are open and " +
      "listening inside the pod's network namespace.",
    async () => sockets(cluster, w),
  );
  await w.step(
    'Check the iptables rules setup',
    'Istio chains in the mangle and nat tables: inbound TCP goes to ztunnel, plaintext to 15006, ' +
      'HBONE to 15008; outbound TCP is redirected to 15001, before ztunnel sends it out in HBONE.',
    async () => rules(cluster, w),
  );
  await w.step(
    'Send a request from sleep to httpbin',
    "curl runs in the sleep pod's network namespace and knows nothing of the mesh.",
    () => request(cluster, w),
  );
  const marks = await w.step(
    'Prove it crossed the wire encrypted',
    'Traffic to and from pods in the mesh is fully encrypted with mTLS: data enters and leaves the ' +
      "pod's network namespace encrypted. A capture on sleep's eth0 during a request with a unique body:",
    () => encrypted(cluster, w),
  );
  await w.step(
    'Read the access log of both ztunnels',
    "The outbound side on sleep's node and the inbound side on httpbin's node each log the connection, " +
      'with the peer identities from the control plane certificates.',
    () => accessLog(cluster, w, marks),
  );
  await w.step(
    `Run ambit doctor on ${DEMO_NAMESPACE}/sleep`,
    'The checks above, automated, with the likely cause and the next command for any that fails.',
    () => doctor(cluster, w),
  );
  return cluster;
}

function nextSteps(w: Walkthrough, lab: string, kubeconfig: string, kept: boolean): void {
  w.heading('What to try next');
  if (!kept) w.line(`Run '${ambitCommand()} demo --keep' to leave the lab running, then:`);
  w.output(
    [
      `kubectl --kubeconfig ${kubeconfig} get pods -A -o wide`,
      `kubectl --kubeconfig ${kubeconfig} get pod -n ${DEMO_NAMESPACE} sleep -o yaml   # the annotation`,
      `AMBIT_LAB=${lab} ${ambitCommand()} lab exec ${DEMO_NAMESPACE}/sleep -- ss -ntlp`,
      `AMBIT_LAB=${lab} ${ambitCommand()} lab exec ${DEMO_NAMESPACE}/sleep -- iptables-save`,
      `AMBIT_LAB=${lab} ${ambitCommand()} lab logs ztunnel --node n1 | grep inpod`,
      `AMBIT_LAB=${lab} ${ambitCommand()} doctor ${DEMO_NAMESPACE}/sleep`,
      `AMBIT_LAB=${lab} ${ambitCommand()} lab pod add --node n1 ${DEMO_NAMESPACE}/another   # enrolled on creation`,
      `${ambitCommand()} lab down --name ${lab}                      # removes everything the demo made`,
    ].join('\n'),
  );
}

const demo: Command = {
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        keep: { type: 'boolean', default: false },
        kubernetes: { type: 'boolean', default: false },
        name: { type: 'string', default: DEFAULT_NAME },
        'ip-family': { type: 'string' },
        'primary-cni': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values.kubernetes) return kubernetesDemo(values.keep);
    const lab = checkLabName(values.name);
    const ipFamily = ipFamilyOption(values['ip-family']);
    const primaryCni = primaryCniOption(values['primary-cni']);
    checkDemoPrerequisites();
    const w = new Walkthrough((text) => process.stdout.write(text));

    if (await removeLeftover(lab)) w.line(`Removed the lab '${lab}' left by an earlier run.`);
    let kubeconfig: string | undefined;
    try {
      const network = {
        ...(ipFamily ? { ipFamily } : {}),
        ...(primaryCni ? { primaryCni } : {}),
      };
      kubeconfig = (await walkthrough(lab, w, network)).layout.kubeconfig;
      nextSteps(w, lab, kubeconfig, values.keep);
    } finally {
      if (values.keep) {
        w.heading('The lab keeps running');
        w.line(`Explore: AMBIT_LAB=${lab} ${ambitCommand()} lab exec ${DEMO_NAMESPACE}/sleep -- ss -ntlp`);
        w.line(`Remove:  ${ambitCommand()} lab down --name ${lab}`);
      } else {
        w.heading('Removing the lab');
        await clusterDown(lab);
        w.line(`lab '${lab}' removed`);
      }
    }
    w.line('\nDemo finished: every step held.');
    return EXIT_OK;
  },
};

async function kubernetesDemo(keep: boolean): Promise<number> {
  if (process.getuid?.() !== 0) throw demoError('DEMO_NOT_ROOT', 'ambit demo --kubernetes needs root');
  if (!existsSync(script('k8s'))) {
    throw demoError(
      'DEMO_NO_CHECKOUT',
      `ambit demo --kubernetes runs the scripts of an ambit checkout, and ${CHECKOUT} is not one (no scripts/k8s)`,
    );
  }
  const w = new Walkthrough((text) => process.stdout.write(text));
  try {
    await kubernetesWalkthrough(w);
    w.heading('What to try next');
    w.output(
      [
        'scripts/k8s kubectl get pods -A -o wide',
        `scripts/k8s kubectl -n ${DEMO_NAMESPACE} get pod -l app=sleep -o yaml   # the annotation`,
        'scripts/k8s kubectl -n istio-system logs ds/ztunnel | grep inpod',
        `scripts/k8s kubectl -n ${DEMO_NAMESPACE} exec deploy/sleep -- curl -sS http://$(scripts/k8s kubectl -n ${DEMO_NAMESPACE} get svc httpbin -o jsonpath='{.spec.clusterIP}'):8000/get`,
        'scripts/k8s down                                    # removes the cluster',
      ].join('\n'),
    );
  } finally {
    if (keep) {
      w.heading('The cluster keeps running');
      w.line('Explore: scripts/k8s kubectl get pods -A');
      w.line('Remove:  scripts/k8s down');
    } else {
      w.heading('Removing the cluster');
      await kubernetesTeardown(w);
    }
  }
  w.line('\nDemo finished: every step held.');
  return EXIT_OK;
}

export default demo;
