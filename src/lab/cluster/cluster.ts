/**
 * The lab as a running cluster: on top of the network (lab.ts), the lab API server, and per node the
 * agent, ztunnel and a kubelet stand-in, each a supervised background process that outlives the
 * command. Pods are written to the API server; the node's kubelet makes their sandboxes.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';
import { readKubeconfig, renderPluginKubeconfig } from '../../cni/kubeconfig.js';
import { PLUGIN_KUBECONFIG_NAME, PLUGIN_TYPE } from '../../cni/names.js';
import { errorMessage } from '../../errors.js';
import { LocalCa } from '../../identity/local-ca.js';
import { ambitCommand } from '../../runtime/invocation.js';
import { logger } from '../../runtime/log.js';
import {
  CNI_SERVICE_ACCOUNT,
  ISTIOD_SERVICE_ACCOUNT,
  kubeconfigYaml,
  ZTUNNEL_SERVICE_ACCOUNT,
} from '../apiserver/index.js';
import { labError } from '../errors.js';
import { nodeIps, nodePodCidrs } from '../ip-family.js';
import { findNode, type LabDownReport, type LabUpOptions, labDown, labUp, loadLab } from '../lab.js';
import { formatPodRef, type PodRef } from '../names.js';
import type { LabState } from '../state.js';
import { labCgroup, removeCgroupTree } from './cgroup.js';
import { killLabProcesses } from './cleanup.js';
import { installIstioCrds } from './istio-crds.js';
import {
  adminClient,
  adminKubeconfig,
  ensureNamespace,
  ensureServiceAccount,
  readPod,
  serviceAccountToken,
  ztunnelPod,
} from './kube.js';
import {
  ClusterLayout,
  type Component,
  NODE_APISERVER_PORT,
  nodeOf,
  type ProcessId,
  processName,
  SYSTEM_NAMESPACE,
  TRUST_DOMAIN,
} from './layout.js';
import { type LaunchOptions, launch } from './processes.js';
import { SandboxManager, type SandboxRecord } from './sandbox.js';
import { runningPid, stopByPidFile } from './supervisor.js';

const log = logger('ambit::lab');
const POD_TIMEOUT_MS = 60_000;

/** Per node, in start order: the agent serves ZDS before ztunnel connects; the kubelet comes last. */
const NODE_COMPONENTS = ['agent', 'ztunnel', 'kubelet'] as const;

/** The bundled plugin: $AMBIT_CNI_PLUGIN, else `ambit-cni` beside the compiled tree, else <repo>/dist. */
export function findCniBundle(): string {
  const outDir = fileURLToPath(new URL('../../../', import.meta.url));
  const candidates = [
    process.env['AMBIT_CNI_PLUGIN'],
    join(outDir, PLUGIN_TYPE),
    join(outDir, '..', 'dist', PLUGIN_TYPE),
  ].filter((c): c is string => !!c);
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw labError(
      'LAB_NO_CNI_PLUGIN',
      `the ambit-cni plugin bundle is missing (looked at ${candidates.join(', ')}); build it with 'node scripts/build-cni.mjs' or set AMBIT_CNI_PLUGIN`,
    );
  }
  return found;
}

/**
 * The lab's API server as the lab recorded it: the admin kubeconfig, whichever server it names (the
 * lab's own stand-in, running or not, or any other API server it was pointed at); undefined for a
 * network-only lab. What makes a lab a cluster lab, rather than which processes happen to run.
 */
export function labKubeconfig(lab: string): string | undefined {
  const path = new ClusterLayout(lab).kubeconfig;
  return existsSync(path) ? path : undefined;
}

/** A cluster lab: its pods are API objects and the sandboxes a kubelet made for them. */
export function isCluster(lab: string): boolean {
  return labKubeconfig(lab) !== undefined;
}

export function processIds(state: LabState): ProcessId[] {
  return [
    { component: 'apiserver' },
    { component: 'controlplane' },
    ...state.nodes.flatMap((n) => NODE_COMPONENTS.map((component) => ({ component, node: n.name }))),
  ];
}

function nodeObject(node: LabState['nodes'][number]) {
  return {
    metadata: {
      name: node.name,
      labels: { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux' },
    },
    spec: { podCIDR: node.podCidr, podCIDRs: nodePodCidrs(node).map((n) => n.podCidr) },
    status: {
      addresses: [
        ...nodeIps(node).map((address) => ({ type: 'InternalIP', address })),
        { type: 'Hostname', address: node.name },
      ],
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'lab kubelet is posting ready status',
        },
      ],
    },
  };
}

/**
 * Brings up the network, then the API server, then every node's agent, ztunnel and kubelet. Each
 * component gets its own identity with the rights its chart gives it (the lab API server's roles):
 * the agent (and CNI plugin) istio-system/istio-cni, the control plane istio-system/istiod, ztunnel
 * istio-system/ztunnel for the CA only, each kubelet system:node:<node>; only the operator is admin.
 */
export async function clusterUp(options: LabUpOptions): Promise<LabState> {
  const state = await labUp({ ...options, podsPerNode: 0 });
  const layout = new ClusterLayout(state.name);
  try {
    const bundle = findCniBundle();
    mkdirSync(layout.cniBinDir, { recursive: true });
    copyFileSync(bundle, join(layout.cniBinDir, PLUGIN_TYPE));
    // Created once here, so the node proxies never race to create the root.
    await LocalCa.open(layout.caDir, { trustDomain: TRUST_DOMAIN });
    await launch(layout, state, { component: 'apiserver' });
    const core = adminClient(state.name);
    for (const ns of ['default', SYSTEM_NAMESPACE, 'kube-system']) await ensureNamespace(core, ns);
    await installIstioCrds(adminKubeconfig(state.name));
    for (const sa of [ZTUNNEL_SERVICE_ACCOUNT, CNI_SERVICE_ACCOUNT, ISTIOD_SERVICE_ACCOUNT])
      await ensureServiceAccount(core, SYSTEM_NAMESPACE, sa);
    mkdirSync(dirname(layout.controlPlaneToken), { recursive: true });
    writeFileSync(
      layout.controlPlaneToken,
      await serviceAccountToken(core, SYSTEM_NAMESPACE, ISTIOD_SERVICE_ACCOUNT),
      { mode: 0o600 },
    );
    const caPem = readKubeconfig(layout.kubeconfig).caPem ?? '';
    for (const node of state.nodes) {
      await core.createNode({ body: nodeObject(node) });
      // The node proxy as the CA sees it: a host-network ztunnel pod on the node, and a token bound to it.
      await core.createNamespacedPod({ namespace: SYSTEM_NAMESPACE, body: ztunnelPod(node) });
      const ztunnelToken = await serviceAccountToken(core, SYSTEM_NAMESPACE, ZTUNNEL_SERVICE_ACCOUNT, {
        audiences: ['istio-ca'],
        pod: `ztunnel-${node.name}`,
      });
      writeFileSync(layout.ztunnelToken(node.name), ztunnelToken, { mode: 0o600 });
      // The node agent's credential, reaching the API server through the node's route.
      const agentKubeconfig = kubeconfigYaml(
        `https://127.0.0.1:${NODE_APISERVER_PORT}`,
        await serviceAccountToken(core, SYSTEM_NAMESPACE, CNI_SERVICE_ACCOUNT),
        caPem,
        'default',
        `${node.name}-istio-cni`,
      );
      writeFileSync(layout.agentKubeconfig(node.name), agentKubeconfig, { mode: 0o600 });
      // What `ambit cni-install` does on a node: the plugin's kubeconfig (the agent's account) in its run dir.
      const runDir = layout.agentRunDir(node.name);
      mkdirSync(runDir, { recursive: true });
      writeFileSync(
        join(runDir, PLUGIN_KUBECONFIG_NAME),
        renderPluginKubeconfig(readKubeconfig(layout.agentKubeconfig(node.name))),
        { mode: 0o600 },
      );
    }
    await launch(layout, state, { component: 'controlplane' });
    await Promise.all(
      state.nodes.map(async (node) => {
        for (const component of NODE_COMPONENTS) await launch(layout, state, { component, node: node.name });
      }),
    );
    log.info('lab cluster up', { lab: state.name, nodes: state.nodes.length, kubeconfig: layout.kubeconfig });
    return state;
  } catch (err) {
    await clusterDown(state.name).catch(() => {});
    throw err;
  }
}

/**
 * Stops every process (kubelets first so nothing recreates pods, the API server last), kills what
 * is left in the lab's namespaces and cgroups (a crash's leftovers), removes the cgroups, then the
 * network and the lab dir. Pod sandboxes are not CNI-DELeted: their nodes go away with them.
 */
export async function clusterDown(lab: string): Promise<LabDownReport & { stopped: string[] }> {
  const layout = new ClusterLayout(lab);
  const stopped: string[] = [];
  const order: Component[] = ['kubelet', 'agent', 'ztunnel', 'controlplane', 'apiserver'];
  let pidFiles: string[] = [];
  try {
    pidFiles = readdirSync(join(layout.dir, 'pids'));
  } catch {}
  for (const component of order) {
    const mine = pidFiles.filter((f) => f === `${component}.pid` || f.startsWith(`${component}-`));
    await Promise.all(
      mine.map(async (f) => {
        if (await stopByPidFile(join(layout.dir, 'pids', f))) stopped.push(f.replace(/\.pid$/, ''));
      }),
    );
  }
  const leftovers = await killLabProcesses(lab);
  if (leftovers.length > 0) log.info("stopped the pods' processes", { lab, pids: leftovers.join(',') });
  removeCgroupTree(labCgroup(lab));
  // The labs' shared parent goes with the last lab (rmdir fails while another lab's cgroup is in it).
  try {
    rmdirSync(dirname(labCgroup(lab)));
  } catch {}
  const report = await labDown(lab);
  return { ...report, stopped };
}

export interface ComponentStatus {
  name: string;
  component: Component;
  node: string | undefined;
  pid: number | undefined;
  up: boolean;
  log: string;
}

export function clusterStatus(state: LabState): ComponentStatus[] {
  const layout = new ClusterLayout(state.name);
  return processIds(state).map((id) => {
    const pid = runningPid(layout.pidFile(id));
    return {
      name: processName(id),
      component: id.component,
      node: nodeOf(id),
      pid,
      up: pid !== undefined,
      log: layout.logFile(id),
    };
  });
}

/** Starts one component that is not running and waits until it is healthy. */
export async function startComponent(
  lab: string,
  id: ProcessId,
  options: LaunchOptions = {},
): Promise<number> {
  const state = loadLab(lab);
  if ('node' in id) findNode(state, id.node);
  return launch(new ClusterLayout(lab), state, id, options);
}

/** SIGTERM (then SIGKILL) to one component; false when it was not running. */
export async function stopComponent(lab: string, id: ProcessId): Promise<boolean> {
  const state = loadLab(lab);
  if ('node' in id) findNode(state, id.node);
  return stopByPidFile(new ClusterLayout(lab).pidFile(id));
}

export interface PodAddOptions {
  node: string;
  labels?: Record<string, string>;
  /** Lab image: `httpbin` (HTTP server on :8000) or `sleep` (only the pause process). */
  image?: string;
  /** Wait until Running (default true). */
  wait?: boolean;
}

/** Why a pod is not Running yet, from what the kubelet reported. */
export function pendingReason(pod: V1Pod | undefined): string {
  if (!pod) return 'the pod was deleted';
  const s = pod.status;
  return (
    s?.message ??
    s?.reason ??
    `phase ${s?.phase ?? 'unknown'} (is the kubelet of ${pod.spec?.nodeName} running?)`
  );
}

/** Writes the pod (its namespace created on demand) and, by default, waits until its kubelet runs it. */
export async function podAdd(lab: string, ref: PodRef, options: PodAddOptions): Promise<V1Pod> {
  const state = loadLab(lab);
  findNode(state, options.node);
  const core = adminClient(lab);
  await ensureNamespace(core, ref.namespace);
  const image = options.image ?? 'sleep';
  await core.createNamespacedPod({
    namespace: ref.namespace,
    body: {
      metadata: { name: ref.name, namespace: ref.namespace, labels: { app: image, ...options.labels } },
      spec: { nodeName: options.node, containers: [{ name: image, image: `ambit.lab/${image}` }] },
    },
  });
  if (options.wait === false) return (await readPod(core, ref.namespace, ref.name))!;
  return waitRunning(lab, ref);
}

export async function waitRunning(lab: string, ref: PodRef, timeoutMs = POD_TIMEOUT_MS): Promise<V1Pod> {
  const core = adminClient(lab);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pod = await readPod(core, ref.namespace, ref.name);
    if (pod?.status?.phase === 'Running') return pod;
    if (!pod || Date.now() > deadline) {
      throw labError(
        'LAB_POD_NOT_RUNNING',
        `pod ${formatPodRef(ref)} is not running after ${timeoutMs / 1000} s: ${pendingReason(pod)}`,
      );
    }
    await sleep(100);
  }
}

/**
 * Deletes the pod gracefully and, as `kubectl delete` does, waits until it is gone: its kubelet
 * stops it, removes the sandbox and then deletes the object.
 */
export async function podDel(lab: string, ref: PodRef): Promise<void> {
  const core = adminClient(lab);
  const pod = await readPod(core, ref.namespace, ref.name);
  if (!pod) {
    throw labError('LAB_POD_NOT_FOUND', `lab '${lab}' has no pod ${formatPodRef(ref)}`);
  }
  await core.deleteNamespacedPod({ namespace: ref.namespace, name: ref.name });
  const deadline = Date.now() + POD_TIMEOUT_MS;
  for (;;) {
    const now = await readPod(core, ref.namespace, ref.name);
    if (!now || now.metadata?.uid !== pod.metadata?.uid) return;
    if (Date.now() > deadline) {
      throw labError(
        'LAB_POD_STUCK',
        `pod ${formatPodRef(ref)} is still Terminating after ${POD_TIMEOUT_MS / 1000} s: is the kubelet of ${pod.spec?.nodeName} running? (${ambitCommand()} lab status --name ${lab})`,
      );
    }
    await sleep(100);
  }
}

/** The sandbox the lab kubelet made for a pod, with the node it is on. */
export function clusterPod(lab: string, ref: PodRef): (SandboxRecord & { node: string }) | undefined {
  return sandboxes(lab).find((r) => r.namespace === ref.namespace && r.name === ref.name);
}

/** Every sandbox the lab's kubelets made, node by node. */
function sandboxes(lab: string): (SandboxRecord & { node: string })[] {
  const state = loadLab(lab);
  return state.nodes.flatMap((node) =>
    new SandboxManager(state, node).records().map((r) => ({ ...r, node: node.name })),
  );
}

/** The pod's sandbox; LAB_POD_NOT_FOUND naming the pods that have one when it has none. */
export function findClusterPod(lab: string, ref: PodRef): SandboxRecord & { node: string } {
  const found = clusterPod(lab, ref);
  if (found) return found;
  const running = sandboxes(lab).map(formatPodRef).sort();
  throw labError(
    'LAB_POD_NOT_FOUND',
    `lab '${lab}' has no running pod ${formatPodRef(ref)} (${running.length > 0 ? `pods with a sandbox: ${running.join(', ')}` : 'no pod has a sandbox'}); see '${ambitCommand()} lab status --name ${lab}', add one with '${ambitCommand()} lab pod add'`,
  );
}

export function clusterPodNetns(lab: string, ref: PodRef): string | undefined {
  return clusterPod(lab, ref)?.netns;
}

/** A cluster pod as `lab status` shows it: the API object's place and phase, its sandbox's netns. */
export interface ClusterPodView {
  namespace: string;
  name: string;
  node: string;
  ip: string;
  phase: string;
  hostNetwork: boolean;
  /** The sandbox's netns; undefined for host-network pods and pods without a sandbox. */
  netns: string | undefined;
}

export interface ClusterPods {
  pods: ClusterPodView[];
  /** Why the API server could not be asked; the pods are then the kubelets' sandboxes. */
  apiError: string | undefined;
}

/**
 * The pods the cluster has, as `kubectl get pods -A` lists them (the lab state holds no pods of a
 * cluster lab: the API server does), each with the netns of its sandbox. When the API server does
 * not answer, the sandboxes the kubelets made, with the reason.
 */
export async function clusterPods(lab: string): Promise<ClusterPods> {
  const records = sandboxes(lab);
  const netnsOf = (namespace: string, name: string) =>
    records.find((r) => r.namespace === namespace && r.name === name)?.netns;
  let items: V1Pod[];
  try {
    items = (await adminClient(lab).listPodForAllNamespaces()).items;
  } catch (err) {
    return {
      pods: records.map((r) => ({
        namespace: r.namespace,
        name: r.name,
        node: r.node,
        ip: r.ip,
        phase: 'Unknown',
        hostNetwork: false,
        netns: r.netns,
      })),
      apiError: errorMessage(err),
    };
  }
  const pods = items.map((p) => {
    const namespace = p.metadata?.namespace ?? 'default';
    const name = p.metadata?.name ?? '';
    return {
      namespace,
      name,
      node: p.spec?.nodeName ?? '',
      ip: p.status?.podIP ?? '',
      phase: p.metadata?.deletionTimestamp ? 'Terminating' : (p.status?.phase ?? 'Pending'),
      hostNetwork: p.spec?.hostNetwork === true,
      netns: netnsOf(namespace, name),
    };
  });
  pods.sort((a, b) => formatPodRef(a).localeCompare(formatPodRef(b)));
  return { pods, apiError: undefined };
}
