/**
 * `ambit lab up|down|status|exec|pod`: the local cluster of network namespaces the rest of ambit
 * runs on. `ambit lab exec ambient-demo/sleep -- ss -ntlp` is the seed's `kubectl debug ... -- ss -ntlp`.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';
import {
  chooseLab,
  createPod,
  DEFAULT_LAB,
  DEFAULT_NODE_CIDR,
  DEFAULT_NODE_MASK,
  DEFAULT_POD_CIDR,
  deletePod,
  findNode,
  findPod,
  type LabState,
  labDown,
  labUp,
  listLabs,
  listNetns,
  loadLab,
  parsePodRef,
  renderTopology,
} from '../lab/index.js';
import { type Command, EXIT_OK, UsageError } from './command.js';

const HELP = `Usage:
  ambit lab up     [--name NAME] [--nodes N] [--pods-per-node K] [--node-cidr CIDR] [--pod-cidr CIDR]
                   [--node-mask LEN] [--cni-path DIR]...
  ambit lab down   [--name NAME]
  ambit lab status [--name NAME] [--json]
  ambit lab exec   [--name NAME] <namespace>/<pod> -- CMD [ARGS...]
  ambit lab exec   [--name NAME] --node NODE -- CMD [ARGS...]
  ambit lab pod add [--name NAME] [--node NODE] <namespace>/<pod>
  ambit lab pod del [--name NAME] <namespace>/<pod>

A lab is a local cluster on this machine's kernel: nodes are network namespaces joined by a bridge
in the namespace ambit-NAME-fabric (the host's own network is not touched); pods are namespaces
attached through the reference CNI plugins (bridge + host-local + loopback from /usr/lib/cni).
Needs root.

Options:
  --name NAME         lab name, lowercase letters and digits. 'up' defaults to ${DEFAULT_LAB}; the other
                      commands default to $AMBIT_LAB, else the only running lab, else ${DEFAULT_LAB}
  --nodes N           number of nodes, n1..nN (default 2)
  --pods-per-node K   pods default/<node>-pod<i> created on each node by 'up' (default 0)
  --node-cidr CIDR    node addresses on the fabric, node nK = host K (default ${DEFAULT_NODE_CIDR})
  --pod-cidr CIDR     cluster pod range (default ${DEFAULT_POD_CIDR})
  --node-mask LEN     prefix length of each node's pod CIDR; node nK gets block K (default ${DEFAULT_NODE_MASK})
  --cni-path DIR      extra CNI plugin directory searched before /usr/lib/cni (repeatable)
  --node NODE         'exec': run in the node's netns; 'pod add': the node (default: the one with fewest pods)
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
      'cni-path': { type: 'string', multiple: true },
    },
  });
  const state = await labUp({
    name: values.name,
    nodes: intOption(values.nodes, 'nodes', 2),
    podsPerNode: intOption(values['pods-per-node'], 'pods-per-node', 0),
    nodeCidr: values['node-cidr'],
    podCidr: values['pod-cidr'],
    nodeMask: intOption(values['node-mask'], 'node-mask', DEFAULT_NODE_MASK),
    pluginDirs: values['cni-path'],
  });
  process.stdout.write(`${renderTopology(state, new Set(listNetns()))}\n`);
  return EXIT_OK;
}

async function down(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { name: { type: 'string' } } });
  const name = labName(values.name);
  const report = await labDown(name);
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
  if (values.json) process.stdout.write(`${JSON.stringify(withPresence(state, present), null, 2)}\n`);
  else process.stdout.write(`${renderTopology(state, present)}\n`);
  return EXIT_OK;
}

function withPresence(state: LabState, present: ReadonlySet<string>): unknown {
  return {
    ...state,
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
      "lab exec needs a command after '--', e.g. ambit lab exec ambient-demo/sleep -- ss -ntlp",
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
    values.node !== undefined
      ? findNode(state, values.node).netns
      : findPod(state, parsePodRef(positionals[0]!)).netns;
  return execInNetns(netns, argv.slice(dashes + 1));
}

async function pod(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { name: { type: 'string' }, node: { type: 'string' } },
  });
  if ((action !== 'add' && action !== 'del') || positionals.length !== 1) {
    throw new UsageError('usage: ambit lab pod add|del [--name NAME] [--node NODE] <namespace>/<pod>');
  }
  const ref = parsePodRef(positionals[0]!);
  const name = labName(values.name);
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

function leastLoaded(state: LabState): string {
  const load = (node: string) => state.pods.filter((p) => p.node === node).length;
  return state.nodes.reduce((best, n) => (load(n.name) < load(best.name) ? n : best)).name;
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = { up, down, status, exec, pod };

const lab: Command = {
  async run(argv) {
    const [sub, ...rest] = argv;
    const options = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (sub === undefined || sub === '--help' || sub === '-h' || options.includes('--help')) {
      process.stdout.write(HELP);
      return sub === undefined ? 2 : EXIT_OK;
    }
    const handler = SUBCOMMANDS[sub];
    if (!handler) throw new UsageError(`unknown lab subcommand '${sub}' (up, down, status, exec, pod)`);
    return handler(rest);
  },
};

export default lab;
