/**
 * Turns the command line into a DoctorTarget: a lab pod (netns, node, uid and IP from the lab
 * state) or a pod on a real node (netns from --netns or --pid, ztunnel's netns from --node-netns).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findClusterPod, isCluster, labKubeconfig } from '../lab/cluster/index.js';
import { findPod, loadLab, type PodRef } from '../lab/index.js';
import { stateDir } from '../lab/names.js';
import type { BackendName, InboundMode } from '../redirect/index.js';
import { ambitCommand } from '../runtime/invocation.js';
import type { ListenAddress } from '../runtime/listen-address.js';
import { doctorError } from './errors.js';
import type { DoctorTarget } from './types.js';

interface Common {
  pod: PodRef;
  admin: ListenAddress;
  kubeconfig?: string;
  backend: BackendName;
  inbound: InboundMode;
  /** The agent's DNS capture setting the pod's rules were written with (default on, as the agent's). */
  dnsCapture?: boolean;
  probe?: { host: string; port: number };
}

export interface LabTargetOptions extends Common {
  lab: string;
}

export interface NodeTargetOptions extends Common {
  netns?: string;
  pid?: number;
  nodeNetns?: string;
  uid?: string;
}

export function labTarget(o: LabTargetOptions): DoctorTarget {
  const state = loadLab(o.lab);
  // A cluster lab's pods are the kubelet's sandboxes; a network-only lab's are in its state file.
  const pod = isCluster(o.lab) ? findClusterPod(o.lab, o.pod) : findPod(state, o.pod);
  const node = state.nodes.find((n) => n.name === pod.node);
  if (!node)
    throw doctorError(
      'ERR_DOCTOR_TARGET',
      `lab '${o.lab}' has no node ${pod.node} for pod ${pod.namespace}/${pod.name}`,
    );
  const kubeconfig = o.kubeconfig ?? labKubeconfig(o.lab);
  const podIps = pod.ips && pod.ips.length > 0 ? pod.ips : [pod.ip];
  const ztunnelLog = join(stateDir(o.lab), 'logs', `ztunnel-${node.name}.log`);
  const agentLog = join(stateDir(o.lab), 'logs', `agent-${node.name}.log`);
  return {
    namespace: pod.namespace,
    name: pod.name,
    uid: pod.uid,
    podNetns: pod.netnsPath,
    podIps,
    nodeNetns: node.netnsPath,
    hostNetns: node.netnsPath,
    admin: o.admin,
    kubeconfig,
    kubeconfigMissing: kubeconfig
      ? undefined
      : `lab '${o.lab}' has no API server (a network-only lab); pass --kubeconfig`,
    backend: o.backend,
    inbound: o.inbound,
    dnsCapture: o.dnsCapture ?? true,
    probe: o.probe,
    hints: {
      inPod: `${ambitCommand()} lab exec --name ${o.lab} ${pod.namespace}/${pod.name} --`,
      ztunnelLogs: existsSync(ztunnelLog)
        ? `grep inpod ${ztunnelLog}`
        : `ip netns pids ${node.netns}   # is ambit ztunnel running on ${node.name}? its log shows 'grep inpod' lines`,
      agentLogs: existsSync(agentLog)
        ? `grep ${pod.namespace}/${pod.name} ${agentLog}`
        : `${ambitCommand()} lab status --name ${o.lab}   # the node agent enrolls pods of labelled namespaces`,
      netnsArg: pod.netnsPath,
    },
  };
}

export function nodeTarget(o: NodeTargetOptions): DoctorTarget {
  if ((o.netns === undefined) === (o.pid === undefined)) {
    throw doctorError(
      'ERR_DOCTOR_TARGET',
      "give the pod's network namespace with exactly one of --netns PATH or --pid PID (a process of the pod), or --lab NAME",
    );
  }
  const podNetns = o.netns ?? `/proc/${o.pid}/ns/net`;
  if (!existsSync(podNetns))
    throw doctorError(
      'ERR_DOCTOR_TARGET',
      `network namespace ${podNetns} does not exist (is the pod running?)`,
    );
  if (o.nodeNetns !== undefined && !existsSync(o.nodeNetns))
    throw doctorError('ERR_DOCTOR_TARGET', `--node-netns ${o.nodeNetns} does not exist`);
  const kubeconfig = o.kubeconfig ?? process.env.KUBECONFIG;
  const ref = `${o.pod.namespace}/${o.pod.name}`;
  return {
    namespace: o.pod.namespace,
    name: o.pod.name,
    uid: o.uid,
    podNetns,
    nodeNetns: o.nodeNetns ?? null,
    // The doctor runs on the pod's node, so its own netns is the node's.
    hostNetns: null,
    admin: o.admin,
    kubeconfig,
    kubeconfigMissing: kubeconfig ? undefined : 'no --kubeconfig and no KUBECONFIG',
    backend: o.backend,
    inbound: o.inbound,
    dnsCapture: o.dnsCapture ?? true,
    probe: o.probe,
    hints: {
      inPod: `nsenter --net=${podNetns}`,
      ztunnelLogs: 'kubectl logs ds/ztunnel -n istio-system | grep inpod',
      agentLogs: `kubectl logs ds/ambit-cni-node -n istio-system -c node-agent | grep ${ref}`,
      netnsArg: podNetns,
    },
  };
}
