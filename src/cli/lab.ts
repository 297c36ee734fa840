/**
 * `ambit lab up|down|status|exec|pod|logs|start|stop|restart`: the local cluster the rest of ambit
 * runs on. `ambit lab exec ambient-demo/sleep -- ss -ntlp` is the seed's `kubectl debug ... -- ss -ntlp`,
 * `ambit lab logs ztunnel` its `kubectl logs ds/ztunnel`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';
import {
  ClusterLayout,
  clusterDown,
  clusterPods,
  clusterStatus,
  clusterUp,
  findClusterPod,
  isCluster,
  isLabComponent,
  nodeOf,
  type ProcessId,
  parseComponent,
  podAdd,
  podDel,
  startComponent,
  stopComponent,
} from '../lab/cluster/index.js';
import {
  chooseLab,
  createPod,
  DEFAULT_LAB,
  DEFAULT_NODE_CIDR,
  DEFAULT_NODE_CIDR6,
  DEFAULT_NODE_MASK,
  DEFAULT_POD_CIDR,
  DEFAULT_POD_CIDR6,
  DEFAULT_PRIMARY_CNI,
  deletePod,
  findNode,
  findPod,
  type LabState,
  labUp,
  listLabs,
  listNetns,
  loadLab,
  parsePodRef,
  primaryOf,
  renderTopology,
} from '../lab/index.js';
import { ambitCommand } from '../runtime/invocation.js';
import { type Command, EXIT_OK, UsageError } from './command.js';
import { cidrsByFamily, ipFamilyOption, primaryCniOption } from './network-options.js';

const HELP = `Usage:
  ambit lab up     [--name NAME] [--nodes N] [--network-only [--pods-per-node K]] [--node-cidr CIDR]
                   [--pod-cidr CIDR] [--node-mask LEN] [--ip-family ipv4|ipv6|dual] [--cni-path DIR]...
                   [--primary-cni bridge|ptp|ipvlan|macvlan]
  ambit lab down   [--name NAME]
  ambit lab status [--name NAME] [--json]
  ambit lab exec   [--name NAME] <namespace>/<pod> -- CMD [ARGS...]
  ambit lab exec   [--name NAME] --node NODE -- CMD [ARGS...]
  ambit lab pod add [--name NAME] [--node NODE] [--label K=V]... [--image httpbin|sleep] [--no-wait] <namespace>/<pod>
  ambit lab pod del [--name NAME] <namespace>/<pod>
  ambit lab logs   [--name NAME] ztunnel|agent|kubelet|apiserver|controlplane [--node NODE] [-f]
  ambit lab start|stop|restart [--name NAME] ztunnel|agent|kubelet|apiserver|controlplane [--node NODE]

A lab is a local cluster on this machine's kernel: nodes are network namespaces joined by a bridge
in the namespace ambit-NAME-fabric (the host's own network is not touched); pods are namespaces
attached through the reference CNI plugins (the primary plugin, bridge by default, + host-local +
loopback from /usr/lib/cni), with ambit-cni chained after them. 'up' starts, as background processes with pid and log files under
/var/run/ambit/lab/NAME/, the lab API server and, per node, the agent and ztunnel (inside the node's
netns) and a kubelet stand-in that makes the sandboxes of the pods written to the API server.
'up' prints the kubeconfig for kubectl. Needs root.

Options:
  --name NAME         lab name, lowercase letters and digits. 'up' defaults to ${DEFAULT_LAB}; the other
                      commands default to $AMBIT_LAB, else the only lab there is, else ${DEFAULT_LAB}
                      (with several labs and none named, the command lists them and asks for one)
  --nodes N           number of nodes, n1..nN (default 2)
  --network-only      only the network (nodes, fabric); pods are made directly, without API server,
                      agents or ztunnels
  --pods-per-node K   with --network-only: pods default/<node>-pod<i> created on each node (default 0)
  --node-cidr CIDR    node addresses on the fabric, node nK = host K (default ${DEFAULT_NODE_CIDR});
                      one range per family, comma-separated, in a dual lab (as --cluster-cidr takes them)
  --pod-cidr CIDR     cluster pod range (default ${DEFAULT_POD_CIDR}); one per family, comma-separated
  --node-mask LEN     prefix length of each node's IPv4 pod CIDR; node nK gets block K (default ${DEFAULT_NODE_MASK})
  --ip-family FAMILY  ipv4 (default), ipv6 (IPv6-only nodes and pods) or dual (both; IPv4 first). IPv6
                      ranges default to unique local: nodes on ${DEFAULT_NODE_CIDR6}, pods in ${DEFAULT_POD_CIDR6}, a
                      /64 per node (n1 = fd00:10:244:1::/64)
  --cni-path DIR      extra CNI plugin directory searched before /usr/lib/cni (repeatable)
  --primary-cni NAME  the reference plugin that attaches pods: bridge (default), ptp, ipvlan or
                      macvlan (ipvlan/macvlan: pods on the node's uplink, the node reaches them
                      through its sub-interface ambit-shim)
  --node NODE         'exec': run in the node's netns; 'pod add': the node (default: the one with fewest
                      pods); 'logs', 'start', 'stop', 'restart': the node of a per-node component
                      (ztunnel, agent, kubelet; default n1); apiserver and controlplane run once per lab
  --label K=V         'pod add': a pod label (repeatable; app=<image> by default)
  --image IMAGE       'pod add': httpbin (HTTP server on :8000, GET /get, POST /post) or sleep (default)
  --no-wait           'pod add': return once the pod is written, without waiting until it runs
  -f, --follow        'logs': keep printing as the log grows
  --json              'status': print the lab state as JSON
`;

function labName(explicit: string | undefined): string {
  return chooseLab(explicit, process.env['AMBIT_LAB'], listLabs());
}

function intOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number (got '${value}')`);
  return Number(value);
}

async function up(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      name: { type: 'string', default: DEFAULT_LAB },
      nodes: { type: 'string' },
      'pods-per-node': { type: 'string' },
      'node-cidr': { type: 'string' },
      'pod-cidr': { type: 'string' },
      'node-mask': { type: 'string' },
      'ip-family': { type: 'string' },
      'cni-path': { type: 'string', multiple: true },
      'network-only': { type: 'boolean', default: false },
      'primary-cni': { type: 'string', default: DEFAULT_PRIMARY_CNI },
    },
  });
  const primaryCni = primaryCniOption(values['primary-cni']);
  const podsPerNode = intOption(values['pods-per-node'], 'pods-per-node', 0);
  if (podsPerNode > 0 && !values['network-only']) {
    throw new UsageError(
      `--pods-per-node needs --network-only; in a cluster add pods with '${ambitCommand()} lab pod add'`,
    );
  }
  const ipFamily = ipFamilyOption(values['ip-family']);
  const nodeCidrs = cidrsByFamily(values['node-cidr'], 'node-cidr', ipFamily ?? 'ipv4');
  const podCidrs = cidrsByFamily(values['pod-cidr'], 'pod-cidr', ipFamily ?? 'ipv4');
  const options = {
    name: values.name,
    nodes: intOption(values.nodes, 'nodes', 2),
    podsPerNode,
    nodeCidr: nodeCidrs.v4,
    podCidr: podCidrs.v4,
    nodeCidr6: nodeCidrs.v6,
    podCidr6: podCidrs.v6,
    nodeMask: intOption(values['node-mask'], 'node-mask', DEFAULT_NODE_MASK),
    ipFamily,
    pluginDirs: values['cni-path'],
    primaryCni,
  };
  const state = values['network-only'] ? await labUp(options) : await clusterUp(options);
  process.stdout.write(`${renderTopology(state, new Set(listNetns()))}\n`);
  if (!values['network-only']) {
    process.stdout.write(`${renderComponents(state)}\n`);
    process.stdout.write(`kubeconfig: ${new ClusterLayout(state.name).kubeconfig}\n`);
    process.stdout.write(`  kubectl --kubeconfig ${new ClusterLayout(state.name).kubeconfig} get pods -A\n`);
  }
  return EXIT_OK;
}

function renderComponents(state: LabState): string {
  const rows = clusterStatus(state).map(
    (c) =>
      `  ${c.name.padEnd(14)} ${(c.up ? 'up' : 'down').padEnd(5)} ${String(c.pid ?? '-').padEnd(8)} ${c.log}`,
  );
  return [`components:`, `  ${'NAME'.padEnd(14)} ${'STATE'.padEnd(5)} ${'PID'.padEnd(8)} LOG`, ...rows].join(
    '\n',
  );
}

async function down(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { name: { type: 'string' } } });
  const name = labName(values.name);
  const report = await clusterDown(name);
  for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
  process.stdout.write(
    report.removedNetns.length > 0
      ? `lab ${name} removed (${report.removedNetns.length} network namespaces)\n`
      : `lab ${name} is not running; nothing to remove\n`,
  );
  return EXIT_OK;
}

async function status(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { name: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const name = labName(values.name);
  const state = loadLab(name);
  const present = new Set(listNetns());
  // A cluster lab's pods live in its API server (what kubectl lists), not in the lab state.
  const cluster = isCluster(name) ? await clusterPods(name) : undefined;
  if (cluster?.apiError) {
    process.stderr.write(
      `warning: the lab's API server did not answer (${cluster.apiError}); pods shown are the sandboxes its kubelets made\n`,
    );
  }
  if (values.json) {
    const shown = {
      ...(withPresence(state, present) as object),
      ...(cluster
        ? {
            pods: cluster.pods.map((p) => ({ ...p, present: p.netns !== undefined && present.has(p.netns) })),
            components: clusterStatus(state),
          }
        : {}),
    };
    process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  } else {
    process.stdout.write(`${renderTopology(state, present, cluster?.pods)}\n`);
    if (cluster) {
      process.stdout.write(`${renderComponents(state)}\n`);
      process.stdout.write(`kubeconfig: ${new ClusterLayout(name).kubeconfig}\n`);
    }
  }
  return EXIT_OK;
}

function withPresence(state: LabState, present: ReadonlySet<string>): unknown {
  return {
    ...state,
    primaryCni: primaryOf(state),
    nodes: state.nodes.map((n) => ({ ...n, present: present.has(n.netns) })),
    pods: state.pods.map((p) => ({ ...p, present: present.has(p.netns) })),
  };
}

/** Runs CMD inside the netns with our stdio; resolves to its exit code (128+signal if killed). */
function execInNetns(netns: string, command: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...command], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}

async function exec(argv: string[]): Promise<number> {
  const dashes = argv.indexOf('--');
  if (dashes < 0 || dashes === argv.length - 1) {
    throw new UsageError(
      `lab exec needs a command after '--', e.g. ${ambitCommand()} lab exec ambient-demo/sleep -- ss -ntlp`,
    );
  }
  const { values, positionals } = parseArgs({
    args: argv.slice(0, dashes),
    allowPositionals: true,
    options: { name: { type: 'string' }, node: { type: 'string' } },
  });
  if ((values.node === undefined) === (positionals.length !== 1) || positionals.length > 1) {
    throw new UsageError('lab exec needs exactly one target: <namespace>/<pod> or --node NODE');
  }
  const name = labName(values.name);
  const state = loadLab(name);
  const netns =
    values.node !== undefined ? findNode(state, values.node).netns : podNetnsOf(name, state, positionals[0]!);
  return execInNetns(netns, argv.slice(dashes + 1));
}

/** A pod made by the kubelet (cluster) or directly (network-only lab). */
function podNetnsOf(lab: string, state: LabState, text: string): string {
  const ref = parsePodRef(text);
  return isCluster(lab) ? findClusterPod(lab, ref).netns : findPod(state, ref).netns;
}

async function pod(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      node: { type: 'string' },
      label: { type: 'string', multiple: true },
      image: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
    },
  });
  if ((action !== 'add' && action !== 'del') || positionals.length !== 1) {
    throw new UsageError('usage: ambit lab pod add|del [--name NAME] [--node NODE] <namespace>/<pod>');
  }
  const ref = parsePodRef(positionals[0]!);
  const name = labName(values.name);
  if (isCluster(name)) return clusterPod(name, action, ref, values);
  if (values.label !== undefined || values.image !== undefined) {
    throw new UsageError('--label and --image need a cluster lab (one made without --network-only)');
  }
  if (action === 'del') {
    if (values.node !== undefined)
      throw new UsageError('lab pod del takes no --node: the pod knows its node');
    await deletePod(name, ref);
    process.stdout.write(`pod ${ref.namespace}/${ref.name} deleted\n`);
    return EXIT_OK;
  }
  const state = loadLab(name);
  const node = values.node ?? leastLoaded(state);
  const added = await createPod(name, node, ref);
  process.stdout.write(
    `pod ${ref.namespace}/${ref.name} on ${added.node}: ${added.ip} (netns ${added.netns})\n`,
  );
  return EXIT_OK;
}

const IMAGES = ['sleep', 'httpbin'];

function parseLabels(texts: readonly string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const text of texts ?? []) {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label '${text}' is not KEY=VALUE`);
    labels[text.slice(0, eq)] = text.slice(eq + 1);
  }
  return labels;
}

async function clusterPod(
  lab: string,
  action: 'add' | 'del',
  ref: { namespace: string; name: string },
  values: { node?: string; label?: string[]; image?: string; 'no-wait'?: boolean },
): Promise<number> {
  if (action === 'del') {
    await podDel(lab, ref);
    process.stdout.write(`pod ${ref.namespace}/${ref.name} deleted\n`);
    return EXIT_OK;
  }
  if (values.image !== undefined && !IMAGES.includes(values.image)) {
    throw new UsageError(`--image must be one of ${IMAGES.join(', ')} (got '${values.image}')`);
  }
  const state = loadLab(lab);
  const node = values.node ?? state.nodes[0]!.name;
  const pod = await podAdd(lab, ref, {
    node,
    labels: parseLabels(values.label),
    image: values.image,
    wait: !values['no-wait'],
  });
  const ip = pod.status?.podIP ?? '(pending)';
  process.stdout.write(
    `pod ${ref.namespace}/${ref.name} on ${node}: ${ip} (${pod.status?.phase ?? 'Pending'})\n`,
  );
  return EXIT_OK;
}

function componentTarget(argv: string[], verb: string): { lab: string; id: ProcessId; follow: boolean } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      node: { type: 'string' },
      follow: { type: 'boolean', short: 'f', default: false },
    },
  });
  if (positionals.length !== 1) {
    throw new UsageError(
      `usage: ambit lab ${verb} ztunnel|agent|kubelet|apiserver|controlplane [--node NODE]`,
    );
  }
  const component = parseComponent(positionals[0]!);
  const lab = labName(values.name);
  const state = loadLab(lab);
  if (isLabComponent(component)) {
    if (values.node !== undefined) throw new UsageError(`${component} runs once per lab: no --node`);
    return { lab, id: { component }, follow: values.follow };
  }
  const node = values.node ?? state.nodes[0]!.name;
  if (values.node === undefined && state.nodes.length > 1) {
    // As `kubectl logs ds/ztunnel` does when the DaemonSet has several pods.
    process.stderr.write(`Found ${state.nodes.length} nodes, using ${node} (pick one with --node)\n`);
  }
  findNode(state, node);
  return { lab, id: { component, node }, follow: values.follow };
}

async function logs(argv: string[]): Promise<number> {
  const { lab, id, follow } = componentTarget(argv, 'logs');
  const file = new ClusterLayout(lab).logFile(id);
  if (!existsSync(file)) {
    throw new UsageError(`lab ${lab} has no log ${file}: is it a cluster lab (made without --network-only)?`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn('tail', ['-n', '+1', ...(follow ? ['-f'] : []), file], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 0));
  });
}

function lifecycle(verb: 'start' | 'stop' | 'restart') {
  return async (argv: string[]): Promise<number> => {
    const { lab, id } = componentTarget(argv, verb);
    const node = nodeOf(id);
    const label = node === undefined ? id.component : `${id.component} on ${node}`;
    if (verb !== 'start') {
      const was = await stopComponent(lab, id);
      process.stdout.write(was ? `${label} stopped\n` : `${label} was not running\n`);
    }
    if (verb !== 'stop') {
      const pid = await startComponent(lab, id);
      process.stdout.write(`${label} started (pid ${pid}) and ready\n`);
    }
    return EXIT_OK;
  };
}

function leastLoaded(state: LabState): string {
  const load = (node: string) => state.pods.filter((p) => p.node === node).length;
  return state.nodes.reduce((best, n) => (load(n.name) < load(best.name) ? n : best)).name;
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  up,
  down,
  status,
  exec,
  pod,
  logs,
  start: lifecycle('start'),
  stop: lifecycle('stop'),
  restart: lifecycle('restart'),
};

const lab: Command = {
  async run(argv) {
    const [sub, ...rest] = argv;
    const options = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (sub === undefined || sub === '--help' || sub === '-h' || options.includes('--help')) {
      process.stdout.write(HELP);
      return sub === undefined ? 2 : EXIT_OK;
    }
    const handler = SUBCOMMANDS[sub];
    if (!handler)
      throw new UsageError(`unknown lab subcommand '${sub}' (${Object.keys(SUBCOMMANDS).join(', ')})`);
    return handler(rest);
  },
};

export default lab;
