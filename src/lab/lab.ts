/**
 * A lab: a local cluster on the real kernel. Nodes are network namespaces joined by a bridge that
 * lives in its own `fabric` namespace (the host's network is never touched); each node routes to
 * the others' pod CIDRs via their fabric addresses, in each of the lab's IP families (ip-family.ts).
 * Pods are namespaces attached the way a
 * container runtime attaches them: by running the node's CNI conflist through the CNI runtime,
 * inside the node's namespace. The conflist's primary plugin is chosen per lab (primary-cni.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { errorMessage } from '../errors.js';
import { ambitCommand } from '../runtime/invocation.js';
import { logger } from '../runtime/log.js';
import { parseCidr } from './cidr.js';
import { type CniResult, CniRuntime, type CniSandbox, DEFAULT_CNI_PATH } from './cni-runtime/index.js';
import { nodeConflist, primaryOf } from './conflist.js';
import { labError } from './errors.js';
import {
  checkIpFamily,
  type FamilyPlan,
  familyPlan,
  hasIpv4,
  hasIpv6,
  nodeNetworks,
  planIpv6,
} from './ip-family.js';
import { withLock } from './lock.js';
import {
  checkLabName,
  FABRIC_BRIDGE,
  fabricNetns,
  fabricPort,
  formatPodRef,
  labPrefix,
  NODE_SHIM,
  NODE_UPLINK,
  netnsPath,
  nodeName,
  nodeNetns,
  POD_IFNAME,
  type PodRef,
  podNetns,
  stateDir,
} from './names.js';
import {
  DEFAULT_PRIMARY_CNI,
  onUplink,
  type PrimaryCni,
  parsePrimaryCni,
  primaryPlugins,
} from './primary-cni.js';
import {
  type IpFamily,
  type LabNode,
  type LabPod,
  type LabState,
  listLabs,
  readState,
  writeState,
} from './state.js';
import { checkPrerequisites, execIn, ipIn, listNetns, sh } from './system.js';

const log = logger('ambit::lab');

/** Documented defaults: nodes on 10.240.0.0/24 (n1 = .1), pods in 10.244.0.0/16, a /24 per node (n1 = 10.244.1.0/24). */
export const DEFAULT_NODE_CIDR = '10.240.0.0/24';
export const DEFAULT_POD_CIDR = '10.244.0.0/16';
export const DEFAULT_NODE_MASK = 24;
export const MAX_NODES = 32;

export interface LabUpOptions {
  name: string;
  nodes: number;
  podsPerNode?: number;
  nodeCidr?: string;
  podCidr?: string;
  /** Prefix length of each node's share of the pod CIDR. */
  nodeMask?: number;
  /** `ipv4` (default), `ipv6` or `dual`: which families nodes and pods get addresses in. */
  ipFamily?: IpFamily;
  /** IPv6 ranges (default fd00:10:240::/64 and fd00:10:244::/56, a /64 per node). */
  nodeCidr6?: string;
  podCidr6?: string;
  /** Extra plugin dirs searched before /usr/lib/cni. */
  pluginDirs?: string[];
  /** The reference plugin that attaches pods (default bridge). */
  primaryCni?: PrimaryCni;
}

export interface LabDownReport {
  removedNetns: string[];
  /** What could not be cleaned gracefully (CNI DEL failures); the netns went anyway. */
  warnings: string[];
}

function pluginDirsOf(extra: readonly string[] | undefined): string[] {
  return [...(extra ?? []), DEFAULT_CNI_PATH];
}

function leftoverNetns(lab: string): string[] {
  return listNetns().filter((ns) => ns.startsWith(labPrefix(lab)));
}

/** True when anything of the lab exists: its state file or any namespace with its prefix. */
export function labExists(lab: string): boolean {
  let state: LabState | undefined;
  try {
    state = readState(lab);
  } catch {
    return true;
  }
  return state !== undefined || leftoverNetns(lab).length > 0;
}

/** The lab's state; LAB_NOT_FOUND when there is none. */
export function loadLab(lab: string): LabState {
  checkLabName(lab);
  const state = readState(lab);
  if (!state) {
    const others = listLabs();
    const where =
      others.length === 0
        ? 'no lab exists here'
        : `labs here: ${others.join(', ')}; pick one with --name NAME or AMBIT_LAB=NAME`;
    throw labError(
      'LAB_NOT_FOUND',
      `lab '${lab}' does not exist (${where}); create it with '${ambitCommand()} lab up --name ${lab}'`,
    );
  }
  return state;
}

/** The IPv4 plan: node nK = host K on the node CIDR, pod block K of the per-node mask. */
function planIpv4(count: number, options: LabUpOptions): FamilyPlan {
  const nodeCidr = parseCidr(options.nodeCidr ?? DEFAULT_NODE_CIDR, 'node CIDR');
  const podCidr = parseCidr(options.podCidr ?? DEFAULT_POD_CIDR, 'pod CIDR');
  const nodeMask = options.nodeMask ?? DEFAULT_NODE_MASK;
  if (!Number.isInteger(nodeMask) || nodeMask <= podCidr.prefix || nodeMask > 29) {
    throw labError(
      'LAB_BAD_CIDR',
      `per-node pod mask /${nodeMask} must be longer than the pod CIDR's /${podCidr.prefix} and at most /29`,
    );
  }
  return familyPlan(nodeCidr, podCidr, nodeMask, count);
}

/** Plans node addresses and pod CIDRs, failing on a bad or too small CIDR before anything is created. */
export function planNodes(lab: string, options: LabUpOptions): LabState {
  const count = options.nodes;
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) {
    throw labError('LAB_BAD_NODES', `--nodes must be an integer from 1 to ${MAX_NODES} (got ${count})`);
  }
  const ipFamily = checkIpFamily(options.ipFamily ?? 'ipv4');
  const primaryCni = parsePrimaryCni(options.primaryCni ?? DEFAULT_PRIMARY_CNI);
  if (onUplink(primaryCni) && ipFamily !== 'ipv4') {
    // The uplink plugins share one L2 segment carved out of the IPv4 pod range (conflist.ts); the lab
    // has no IPv6 plan for them.
    throw labError(
      'LAB_BAD_IP_FAMILY',
      `--primary-cni ${primaryCni} runs IPv4 labs only here; use --primary-cni bridge or ptp with --ip-family ${ipFamily}`,
    );
  }
  // Primary family first, as Kubernetes lists a dual-stack node's podCIDRs.
  const plans = [
    hasIpv4(ipFamily) ? planIpv4(count, options) : undefined,
    hasIpv6(ipFamily) ? planIpv6(count, options.nodeCidr6, options.podCidr6) : undefined,
  ].filter((p): p is FamilyPlan => p !== undefined);
  const primary = plans[0]!;
  const nodes: LabNode[] = [];
  for (let i = 1; i <= count; i++) {
    const name = nodeName(i);
    const networks = plans.map((p) => p.networks[i - 1]!);
    nodes.push({
      name,
      netns: nodeNetns(lab, name),
      netnsPath: netnsPath(nodeNetns(lab, name)),
      ip: networks[0]!.ip,
      podCidr: networks[0]!.podCidr,
      podGateway: networks[0]!.podGateway,
      ...(ipFamily === 'ipv4' ? {} : { networks }),
    });
  }
  return {
    version: 1,
    name: lab,
    createdAt: new Date().toISOString(),
    nodeCidr: primary.nodeCidr,
    podCidr: primary.podCidr,
    nodeMask: primary.nodeMask,
    ...(ipFamily === 'ipv4' ? {} : { ipFamily }),
    primaryCni,
    pluginDirs: pluginDirsOf(options.pluginDirs),
    fabric: { netns: fabricNetns(lab), bridge: FABRIC_BRIDGE },
    nodes,
    pods: [],
  };
}

function createFabric(state: LabState): void {
  const fabric = state.fabric.netns;
  sh('ip', ['netns', 'add', fabric]);
  ipIn(fabric, ['link', 'set', 'lo', 'up']);
  ipIn(fabric, ['link', 'add', FABRIC_BRIDGE, 'type', 'bridge']);
  ipIn(fabric, ['link', 'set', FABRIC_BRIDGE, 'up']);
}

function createNode(state: LabState, node: LabNode): void {
  const fabric = state.fabric.netns;
  sh('ip', ['netns', 'add', node.netns]);
  ipIn(node.netns, ['link', 'set', 'lo', 'up']);
  const port = fabricPort(node.name);
  ipIn(fabric, ['link', 'add', port, 'type', 'veth', 'peer', 'name', NODE_UPLINK, 'netns', node.netns]);
  ipIn(fabric, ['link', 'set', port, 'master', FABRIC_BRIDGE]);
  ipIn(fabric, ['link', 'set', port, 'up']);
  addNodeAddresses(state, node);
  ipIn(node.netns, ['link', 'set', NODE_UPLINK, 'up']);
  execIn(node.netns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  if (state.ipFamily && hasIpv6(state.ipFamily))
    execIn(node.netns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  if (onUplink(primaryOf(state))) addShim(state, node);
}

/**
 * ipvlan/macvlan: the node's own sub-interface on its uplink, with the pods' gateway address and the
 * route to the node's pod CIDR. The pods' sub-interfaces cannot reach the uplink itself (their
 * master), but reach this one: it carries node-to-pod traffic (kubelet probes) and the pods' replies
 * to anything off their subnet, such as the probe SNAT address.
 */
function addShim(state: LabState, node: LabNode): void {
  const primary = primaryOf(state);
  const kind = primary === 'ipvlan' ? ['ipvlan', 'mode', 'l2'] : ['macvlan', 'mode', 'bridge'];
  try {
    ipIn(node.netns, ['link', 'add', NODE_SHIM, 'link', NODE_UPLINK, 'type', ...kind]);
  } catch (err) {
    // The first link of this type the lab makes: a kernel without the driver says so here.
    if (!/Unknown device type/.test(errorMessage(err))) throw err;
    throw labError(
      'LAB_PRIMARY_UNSUPPORTED',
      `--primary-cni ${primary} needs the kernel's ${primary} link type, which this kernel does not have (built without CONFIG_${primary.toUpperCase()}, or the module cannot load: try 'modprobe ${primary}'); pick another --primary-cni`,
    );
  }
  ipIn(node.netns, ['addr', 'add', `${node.podGateway}/32`, 'dev', NODE_SHIM]);
  ipIn(node.netns, ['link', 'set', NODE_SHIM, 'up']);
  ipIn(node.netns, ['route', 'add', node.podCidr, 'dev', NODE_SHIM, 'src', node.podGateway]);
}

/**
 * The node's fabric address in each family. IPv6 ones skip duplicate address detection (`nodad`):
 * the lab assigns them uniquely, and a tentative address could not be routed from for a second or two.
 */
function addNodeAddresses(state: LabState, node: LabNode): void {
  for (const net of nodeNetworks(node, state.nodeCidr)) {
    const nodad = isIPv6(net.ip) ? ['nodad'] : [];
    ipIn(node.netns, ['addr', 'add', `${net.ip}/${net.nodePrefix}`, 'dev', NODE_UPLINK, ...nodad]);
  }
}

/** Each node routes every peer's pod CIDR, per family, via the peer's fabric address in that family. */
function routeNodes(state: LabState): void {
  for (const node of state.nodes) {
    for (const peer of state.nodes) {
      if (peer === node) continue;
      for (const net of nodeNetworks(peer, state.nodeCidr))
        ipIn(node.netns, ['route', 'add', net.podCidr, 'via', net.ip, 'dev', NODE_UPLINK]);
    }
  }
}

/** Creates the lab; on any failure removes what it made and rethrows. */
export async function labUp(options: LabUpOptions): Promise<LabState> {
  const lab = checkLabName(options.name);
  const state = planNodes(lab, options);
  const podsPerNode = options.podsPerNode ?? 0;
  if (!Number.isInteger(podsPerNode) || podsPerNode < 0 || podsPerNode > 50) {
    throw labError('LAB_BAD_PODS', `--pods-per-node must be an integer from 0 to 50 (got ${podsPerNode})`);
  }
  checkPrerequisites(state.pluginDirs, primaryPlugins(primaryOf(state)));
  if (labExists(lab)) {
    throw labError(
      'LAB_EXISTS',
      `lab '${lab}' already exists; use it, or remove it first with '${ambitCommand()} lab down --name ${lab}'`,
    );
  }
  try {
    await withLock(stateDir(lab), async () => {
      createFabric(state);
      for (const node of state.nodes) createNode(state, node);
      routeNodes(state);
      writeState(state);
    });
    log.info('lab up', {
      lab,
      nodes: state.nodes.length,
      pod_cidr: state.podCidr,
      primary_cni: primaryOf(state),
    });
    for (const node of state.nodes) {
      for (let k = 1; k <= podsPerNode; k++) {
        await createPod(lab, node.name, { namespace: 'default', name: `${node.name}-pod${k}` });
      }
    }
    return loadLab(lab);
  } catch (err) {
    await labDown(lab).catch(() => {});
    throw err;
  }
}

type PodIdentity = Pick<LabPod, 'containerId' | 'netnsPath' | 'ifname' | 'namespace' | 'name' | 'uid'>;

function sandboxOf(pod: PodIdentity): CniSandbox {
  return {
    containerId: pod.containerId,
    netns: pod.netnsPath,
    ifname: pod.ifname,
    podNamespace: pod.namespace,
    podName: pod.name,
    podUid: pod.uid,
  };
}

function runtimeFor(state: LabState, node: LabNode): CniRuntime {
  return new CniRuntime({ pluginDirs: state.pluginDirs, inNetns: node.netnsPath });
}

/** The pod's addresses on `ifname`, in the CNI result's order (host-local's: its ranges', primary first). */
export function podAddresses(result: CniResult, ifname: string): string[] {
  const ifIndex = (result.interfaces ?? []).findIndex((i) => i.name === ifname && i.sandbox);
  const ips = (result.ips ?? [])
    .filter((i) => ifIndex < 0 || i.interface === undefined || i.interface === ifIndex)
    .map((i) => i.address.split('/')[0]!);
  if (ips.length === 0) throw labError('LAB_NO_POD_IP', `the CNI chain returned no IP address for ${ifname}`);
  return ips;
}

export function findNode(state: LabState, node: string): LabNode {
  const found = state.nodes.find((n) => n.name === node);
  if (!found) {
    throw labError(
      'LAB_NODE_NOT_FOUND',
      `lab '${state.name}' has no node '${node}' (nodes: ${state.nodes.map((n) => n.name).join(', ')})`,
    );
  }
  return found;
}

export function findPod(state: LabState, ref: PodRef): LabPod {
  const found = state.pods.find((p) => p.namespace === ref.namespace && p.name === ref.name);
  if (!found) {
    const known = state.pods.map(formatPodRef).join(', ') || 'none';
    throw labError(
      'LAB_POD_NOT_FOUND',
      `lab '${state.name}' has no pod ${formatPodRef(ref)} (pods: ${known}); add one with '${ambitCommand()} lab pod add'`,
    );
  }
  return found;
}

/** Makes the pod's netns and attaches it through the node's CNI chain (CNI_IFNAME=eth0). */
export async function createPod(lab: string, node: string, ref: PodRef): Promise<LabPod> {
  return withLock(stateDir(lab), async () => {
    const state = loadLab(lab);
    const host = findNode(state, node);
    if (state.pods.some((p) => p.namespace === ref.namespace && p.name === ref.name)) {
      throw labError('LAB_POD_EXISTS', `pod ${formatPodRef(ref)} already exists in lab '${lab}'`);
    }
    const netns = podNetns(lab, ref);
    const pod: PodIdentity & Pick<LabPod, 'node' | 'netns'> = {
      namespace: ref.namespace,
      name: ref.name,
      uid: randomUUID(),
      containerId: randomBytes(32).toString('hex'),
      node: host.name,
      netns,
      netnsPath: netnsPath(netns),
      ifname: POD_IFNAME,
    };
    sh('ip', ['netns', 'add', netns]);
    const runtime = runtimeFor(state, host);
    const conflist = nodeConflist(state, host);
    const sandbox = sandboxOf(pod);
    try {
      const result = await runtime.add(conflist, sandbox);
      const ips = podAddresses(result, POD_IFNAME);
      const added: LabPod = { ...pod, ip: ips[0]!, ...(ips.length > 1 ? { ips } : {}), cniResult: result };
      state.pods.push(added);
      writeState(state);
      log.info('pod added', { pod: formatPodRef(ref), node: host.name, ip: added.ip });
      return added;
    } catch (err) {
      // As a runtime does after a failed ADD: DEL (idempotent) so IPAM and links are released.
      await runtime.del(conflist, sandbox).catch(() => {});
      try {
        sh('ip', ['netns', 'del', netns]);
      } catch {}
      throw err;
    }
  });
}

/** Runs CNI DEL for the pod (best effort: a failure is logged), then removes its netns. */
export async function deletePod(lab: string, ref: PodRef): Promise<void> {
  await withLock(stateDir(lab), async () => {
    const state = loadLab(lab);
    const pod = findPod(state, ref);
    const warning = await cniDel(state, pod);
    if (warning)
      log.warn('pod CNI DEL failed; removing its netns anyway', { pod: formatPodRef(ref), error: warning });
    if (listNetns().includes(pod.netns)) sh('ip', ['netns', 'del', pod.netns]);
    state.pods = state.pods.filter((p) => p !== pod);
    writeState(state);
    log.info('pod deleted', { pod: formatPodRef(ref), node: pod.node });
  });
}

async function cniDel(state: LabState, pod: LabPod): Promise<string | undefined> {
  const node = state.nodes.find((n) => n.name === pod.node);
  if (!node || !listNetns().includes(node.netns)) return `node ${pod.node} is gone`;
  try {
    await runtimeFor(state, node).del(nodeConflist(state, node), sandboxOf(pod), pod.cniResult);
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/**
 * Removes everything of the lab: CNI DEL for the pods it knows, then every namespace carrying the
 * lab's prefix (known or not, so leftovers of a crash go too), then its state and IPAM dirs.
 * Idempotent: a lab that does not exist is already down.
 */
export async function labDown(lab: string): Promise<LabDownReport> {
  checkLabName(lab);
  if (process.getuid?.() !== 0) {
    throw labError(
      'LAB_NOT_ROOT',
      'removing a lab deletes network namespaces and needs root: run it with sudo',
    );
  }
  const warnings: string[] = [];
  const removedNetns: string[] = [];
  await withLock(stateDir(lab), async () => {
    let state: LabState | undefined;
    try {
      state = readState(lab);
    } catch (err) {
      warnings.push(errorMessage(err));
    }
    for (const pod of state?.pods ?? []) {
      const warning = await cniDel(state!, pod);
      if (warning) warnings.push(`${formatPodRef(pod)}: ${warning}`);
    }
    // Pods before nodes before the fabric, the reverse of creation.
    const rank = (ns: string) => (ns.includes('-pod-') ? 0 : ns === fabricNetns(lab) ? 2 : 1);
    for (const ns of leftoverNetns(lab).sort((a, b) => rank(a) - rank(b))) {
      sh('ip', ['netns', 'del', ns]);
      removedNetns.push(ns);
    }
  });
  rmSync(stateDir(lab), { recursive: true, force: true });
  if (removedNetns.length > 0) log.info('lab down', { lab, removed_netns: removedNetns.length });
  return { removedNetns, warnings };
}
