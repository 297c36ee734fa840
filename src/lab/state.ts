/**
 * The lab's record of what it created, in /var/run/ambit/lab/<name>/state.json. Written to a temp
 * file and renamed, so a crash leaves either the old or the new state, never half of one.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCode } from '../errors.js';
import { ambitCommand } from '../runtime/invocation.js';
import type { CniResult } from './cni-runtime/index.js';
import { labError } from './errors.js';
import { STATE_ROOT, stateDir } from './names.js';
import { isPrimaryCni, type PrimaryCni } from './primary-cni.js';

export interface LabNode {
  name: string;
  netns: string;
  netnsPath: string;
  /** Address on the fabric, e.g. 10.240.0.1. */
  ip: string;
  podCidr: string;
  /** Pods' default gateway: the pod bridge (bridge), each pod's host veth (ptp), the node's shim (ipvlan, macvlan). */
  podGateway: string;
  /**
   * Every family's network, primary first (its fields are the ones above), in an IPv6 or dual-stack
   * lab; absent in an IPv4 lab.
   */
  networks?: NodeNetwork[];
}

/** The lab's IP families (ip-family.ts): absent in state means ipv4. */
export type IpFamily = 'ipv4' | 'ipv6' | 'dual';

/** A node's address and pod range in one IP family. */
export interface NodeNetwork {
  /** Address on the fabric. */
  ip: string;
  /** Prefix length of the node CIDR the address is on. */
  nodePrefix: number;
  podCidr: string;
  podGateway: string;
}

export interface LabPod {
  namespace: string;
  name: string;
  uid: string;
  containerId: string;
  node: string;
  netns: string;
  netnsPath: string;
  ifname: string;
  /** The pod's address in the lab's primary family. */
  ip: string;
  /** Every address, primary first (dual stack: IPv4 then IPv6); absent in state of an older lab. */
  ips?: string[];
  /** The final CNI ADD result; DEL gets it back as prevResult. */
  cniResult: CniResult;
}

export interface LabState {
  version: 1;
  name: string;
  createdAt: string;
  nodeCidr: string;
  podCidr: string;
  nodeMask: number;
  /** The primary CNI plugin; absent in states written before it was a choice, which were bridge labs. */
  primaryCni?: PrimaryCni;
  /** `ipv6`: the CIDRs and addresses above are IPv6; `dual`: they are IPv4, nodes' `networks` add IPv6. */
  ipFamily?: IpFamily;
  pluginDirs: string[];
  fabric: { netns: string; bridge: string };
  nodes: LabNode[];
  pods: LabPod[];
}

export function stateFile(lab: string, root?: string): string {
  return join(root ?? stateDir(lab), 'state.json');
}

/** The lab's state, or undefined when it has none. A corrupt file is an error, not "no lab". */
export function readState(lab: string, dir = stateDir(lab)): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(stateFile(lab, dir), 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw labError(
      'LAB_STATE_CORRUPT',
      `lab state ${stateFile(lab, dir)} is not valid JSON; '${ambitCommand()} lab down --name ${lab}' removes the lab anyway`,
    );
  }
  const s = value as Partial<LabState>;
  if (s.version !== 1 || s.name !== lab || !Array.isArray(s.nodes) || !Array.isArray(s.pods)) {
    throw labError(
      'LAB_STATE_CORRUPT',
      `lab state ${stateFile(lab, dir)} is not a version 1 state of lab '${lab}'; '${ambitCommand()} lab down --name ${lab}' removes the lab anyway`,
    );
  }
  if (s.primaryCni !== undefined && !isPrimaryCni(String(s.primaryCni))) {
    throw labError(
      'LAB_STATE_CORRUPT',
      `lab state ${stateFile(lab, dir)} names an unknown primary CNI '${s.primaryCni}'; 'ambit lab down --name ${lab}' removes the lab anyway`,
    );
  }
  return s as LabState;
}

export function writeState(state: LabState, dir = stateDir(state.name)): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const target = stateFile(state.name, dir);
  const temp = `${target}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  renameSync(temp, target);
}

/** Names of the labs that have a state file. */
export function listLabs(root = STATE_ROOT): string[] {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  return entries.filter((name) => existsSync(join(root, name, 'state.json'))).sort();
}
