/**
 * How each lab component is launched and when it counts as up: the API server and the kubelets in
 * the host netns (entry.js), and per node, inside the node's netns (`ip netns exec`), `ambit agent`
 * and `ambit ztunnel` with their node's run dir, ZDS socket, kubeconfig and the lab's CA. A node's
 * ztunnel may instead be Istio's own binary, fed the same way (a peer for benchmarks and interop).
 */
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { READINESS_PORT } from '../../node/contract.js';
import { NetnsHandle } from '../../sys/index.js';
import { ZTUNNEL_NODE_FLAGS } from '../../ztunnel/heap.js';
import { ZTUNNEL_SERVICE_ACCOUNT } from '../apiserver/index.js';
import { labError } from '../errors.js';
import { httpStatusIn } from '../http-in-netns.js';
import { findNode } from '../lab.js';
import type { LabState } from '../state.js';
import {
  AGENT_HEALTH_PORT,
  type ClusterLayout,
  CONTROL_PLANE_PORT,
  type ProcessId,
  processName,
  SYSTEM_NAMESPACE,
  TRUST_DOMAIN,
} from './layout.js';
import { logTail, runningPid, startDetached } from './supervisor.js';

const ENTRY = fileURLToPath(new URL('./entry.js', import.meta.url));
const CLI_MAIN = new URL('../../cli/main.js', import.meta.url).href;
const CLI = `const { main } = await import(${JSON.stringify(CLI_MAIN)}); process.exitCode = await main(process.argv.slice(1));`;
const READY_TIMEOUT_MS = 30_000;

/**
 * The program a node's `ztunnel` process runs: ambit's own, or Istio's ztunnel binary in its place
 * (same ZDS socket, CA and xDS from the lab's control plane, same token), to compare or interoperate.
 */
export type NodeProxy = { kind: 'ambit' } | { kind: 'istio'; binary: string };

export interface LaunchOptions {
  /** Which ztunnel a node's `ztunnel` process is; ambit's by default. */
  proxy?: NodeProxy;
  /** Added to the component's environment, e.g. ztunnel's RUST_LOG. */
  env?: Record<string, string>;
}

/** Name of the link Istio's binary is run through, so the process shows as ambit's lab component. */
export const ISTIO_ZTUNNEL_LINK = 'ambit-istio-ztunnel';

/**
 * Istio's ztunnel as its README runs it on a node: only its own variables (`env -i`), started in an
 * empty working dir (it reads ./etc/istio/config/mesh), through a link in the node's lab dir.
 */
function istioZtunnelCommand(
  layout: ClusterLayout,
  node: LabState['nodes'][number],
  binary: string,
): { argv: string[]; env: NodeJS.ProcessEnv; cwd: string } {
  const nodeDir = layout.nodeDir(node.name);
  const cwd = join(nodeDir, 'istio-ztunnel');
  rmSync(cwd, { recursive: true, force: true });
  mkdirSync(cwd, { recursive: true });
  const link = join(nodeDir, ISTIO_ZTUNNEL_LINK);
  rmSync(link, { force: true });
  symlinkSync(resolve(binary), link);
  const controlPlane = `https://127.0.0.1:${CONTROL_PLANE_PORT}`;
  return {
    argv: ['ip', 'netns', 'exec', node.netns, link, 'proxy'],
    env: {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      RUST_LOG: 'info',
      INPOD_UDS: layout.zdsSocket(node.name),
      CA_ADDRESS: controlPlane,
      XDS_ADDRESS: controlPlane,
      CA_ROOT_CA: layout.controlPlaneRootCert,
      XDS_ROOT_CA: layout.controlPlaneRootCert,
      AUTH_TOKEN: layout.ztunnelToken(node.name),
      POD_NAME: `ztunnel-${node.name}`,
      POD_NAMESPACE: SYSTEM_NAMESPACE,
      SERVICE_ACCOUNT: ZTUNNEL_SERVICE_ACCOUNT,
      NODE_NAME: node.name,
      INSTANCE_IP: node.ip,
      CLUSTER_ID: 'Kubernetes',
      ISTIO_META_CLUSTER_ID: 'Kubernetes',
      TRUST_DOMAIN,
    },
    cwd,
  };
}

function command(
  layout: ClusterLayout,
  state: LabState,
  id: ProcessId,
  options: LaunchOptions,
): { argv: string[]; env: NodeJS.ProcessEnv; cwd?: string } {
  const env = { ...process.env };
  if (!('node' in id)) return { argv: [process.execPath, ENTRY, id.component, state.name], env };
  const node = findNode(state, id.node);
  if (id.component === 'kubelet')
    return { argv: [process.execPath, ENTRY, 'kubelet', state.name, node.name], env };
  // Node flags for the lab's ztunnels only, for profiling (e.g. `--cpu-prof --cpu-prof-dir=/tmp/x`):
  // NODE_OPTIONS refuses --cpu-prof, and would reach every process of the lab.
  // The ztunnel's own heap flags (ztunnel/heap.ts) come first, as bin/ambit gives them.
  const nodeFlags =
    id.component === 'ztunnel'
      ? [
          ...ZTUNNEL_NODE_FLAGS,
          ...(process.env['AMBIT_LAB_ZTUNNEL_NODE_FLAGS'] ?? '').split(/\s+/).filter(Boolean),
        ]
      : [];
  const inNode = [
    'ip',
    'netns',
    'exec',
    node.netns,
    process.execPath,
    ...nodeFlags,
    '--input-type=module',
    '-e',
    CLI,
  ];
  if (id.component === 'agent') {
    return {
      argv: [
        ...[...inNode, 'agent', '--node-name', node.name],
        ...['--kubeconfig', layout.agentKubeconfig(node.name), '--run-dir', layout.agentRunDir(node.name)],
        ...['--zds-socket', layout.zdsSocket(node.name), '--system-namespace', SYSTEM_NAMESPACE],
      ],
      env: { ...env, NODE_NAME: node.name, KUBECONFIG: layout.agentKubeconfig(node.name) },
    };
  }
  if (options.proxy?.kind === 'istio') return istioZtunnelCommand(layout, node, options.proxy.binary);
  return {
    argv: [
      ...[...inNode, 'ztunnel', '--node-name', node.name, '--inpod-uds', layout.zdsSocket(node.name)],
      // Certificates and workloads from the lab's control plane, as from istiod.
      ...['--ca-address', `https://127.0.0.1:${CONTROL_PLANE_PORT}`],
      ...['--xds-address', `https://127.0.0.1:${CONTROL_PLANE_PORT}`],
      ...['--ca-root-ca', layout.controlPlaneRootCert, '--xds-root-ca', layout.controlPlaneRootCert],
      ...['--auth-token', layout.ztunnelToken(node.name), '--trust-domain', TRUST_DOMAIN],
      ...[
        '--pod-name',
        `ztunnel-${node.name}`,
        '--pod-namespace',
        SYSTEM_NAMESPACE,
        '--instance-ip',
        node.ip,
      ],
    ],
    env: { ...env, NODE_NAME: node.name, INPOD_UDS: layout.zdsSocket(node.name) },
  };
}

/** True once the component answers its health check (agent /readyz, ztunnel /healthz/ready, ...). */
async function healthy(layout: ClusterLayout, state: LabState, id: ProcessId): Promise<boolean> {
  if (!('node' in id)) {
    return existsSync(id.component === 'apiserver' ? layout.apiserverUrlFile : layout.controlPlaneReadyFile);
  }
  if (id.component === 'kubelet') return logTail(layout.logFile(id), 50).includes('lab kubelet started');
  const netns = NetnsHandle.open(findNode(state, id.node).netnsPath);
  try {
    return id.component === 'agent'
      ? (await httpStatusIn(netns, AGENT_HEALTH_PORT, '/readyz')) === 200
      : (await httpStatusIn(netns, READINESS_PORT, '/healthz/ready')) === 200;
  } finally {
    netns.close();
  }
}

/** Starts the component detached and waits until it is healthy; the error names it and shows its log. */
export async function launch(
  layout: ClusterLayout,
  state: LabState,
  id: ProcessId,
  options: LaunchOptions = {},
): Promise<number> {
  const existing = runningPid(layout.pidFile(id));
  if (existing !== undefined) {
    throw labError('LAB_COMPONENT_RUNNING', `${processName(id)} already runs (pid ${existing})`);
  }
  const { argv, env, cwd } = command(layout, state, id, options);
  const pid = startDetached(
    { pidFile: layout.pidFile(id), logFile: layout.logFile(id), ...(cwd === undefined ? {} : { cwd }) },
    argv,
    { ...env, ...options.env },
  );
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await healthy(layout, state, id))) {
    const alive = runningPid(layout.pidFile(id)) !== undefined;
    if (!alive || Date.now() > deadline) {
      const why = alive ? `did not become ready within ${READY_TIMEOUT_MS / 1000} s` : 'exited';
      throw labError(
        'LAB_COMPONENT_FAILED',
        `${processName(id)} (pid ${pid}) ${why}; last lines of ${layout.logFile(id)}:\n${logTail(layout.logFile(id))}`,
      );
    }
    await sleep(100);
  }
  return pid;
}
