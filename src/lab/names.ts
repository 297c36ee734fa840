/**
 * Every name the lab gives the kernel. All netns of lab L start with `ambit-L-` and lab names
 * hold no `-`, so `lab down` can find a lab's leftovers by prefix without touching another lab's.
 */
import { ambitCommand } from '../runtime/invocation.js';
import { labError } from './errors.js';

export const DEFAULT_LAB = 'ambit';
export const STATE_ROOT = '/var/run/ambit/lab';
export const NETNS_DIR = '/var/run/netns';

/** Links live inside the lab's namespaces, so short fixed names cannot clash across labs. */
export const FABRIC_BRIDGE = 'ambit-fabric';
export const NODE_UPLINK = 'ambit-up';
export const POD_BRIDGE = 'ambit-cni0';
/** ipvlan/macvlan labs: the node's own sub-interface on its uplink, through which it reaches its pods. */
export const NODE_SHIM = 'ambit-shim';
export const POD_IFNAME = 'eth0';

const LAB_NAME = /^[a-z][a-z0-9]{0,15}$/;
const K8S_NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const K8S_POD = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** `t` would own the prefix `ambit-t-` of the test helpers' throw-away namespaces. */
const RESERVED_LAB_NAMES = new Set(['t']);

export function checkLabName(name: string): string {
  if (RESERVED_LAB_NAMES.has(name)) {
    throw labError('LAB_BAD_NAME', `lab name '${name}' is reserved (ambit-${name}-* are test namespaces)`);
  }
  if (!LAB_NAME.test(name)) {
    throw labError(
      'LAB_BAD_NAME',
      `invalid lab name '${name}': use 1-16 lowercase letters and digits, starting with a letter`,
    );
  }
  return name;
}

export function labPrefix(lab: string): string {
  return `ambit-${lab}-`;
}

export function fabricNetns(lab: string): string {
  return `${labPrefix(lab)}fabric`;
}

export function nodeName(index: number): string {
  return `n${index}`;
}

export function nodeNetns(lab: string, node: string): string {
  return `${labPrefix(lab)}${node}`;
}

/** The fabric-side end of a node's veth (in the fabric netns), `ambit-n1`. */
export function fabricPort(node: string): string {
  return `ambit-${node}`;
}

export function netnsPath(netns: string): string {
  return `${NETNS_DIR}/${netns}`;
}

export interface PodRef {
  namespace: string;
  name: string;
}

export function formatPodRef(p: PodRef): string {
  return `${p.namespace}/${p.name}`;
}

/** Parses `namespace/name` (Kubernetes naming rules). */
export function parsePodRef(text: string): PodRef {
  const parts = text.split('/');
  const [namespace, name] = parts;
  if (parts.length !== 2 || !namespace || !name) {
    throw labError(
      'LAB_BAD_POD',
      `invalid pod '${text}': expected <namespace>/<name>, e.g. ambient-demo/sleep`,
    );
  }
  if (namespace.length > 63 || !K8S_NAMESPACE.test(namespace)) {
    throw labError(
      'LAB_BAD_POD',
      `invalid namespace '${namespace}': lowercase letters, digits and '-', at most 63`,
    );
  }
  if (name.length > 63 || !K8S_POD.test(name)) {
    throw labError(
      'LAB_BAD_POD',
      `invalid pod name '${name}': lowercase letters, digits, '-' and '.', at most 63`,
    );
  }
  return { namespace, name };
}

/** `_` cannot occur in Kubernetes names, so it separates namespace and pod unambiguously. */
export function podNetns(lab: string, pod: PodRef): string {
  return `${labPrefix(lab)}pod-${pod.namespace}_${pod.name}`;
}

export function stateDir(lab: string): string {
  return `${STATE_ROOT}/${lab}`;
}

/**
 * The lab a command means when `--name` is not given: $AMBIT_LAB, else the only lab there is, else
 * `ambit` (whose absence then says how to create it). With several labs it does not guess: it names
 * them and how to pick one. So after `ambit demo --keep`, `ambit lab exec ambient-demo/sleep -- ss -ntlp`
 * works.
 */
export function chooseLab(
  explicit: string | undefined,
  env: string | undefined,
  existing: readonly string[],
): string {
  if (explicit !== undefined) return explicit;
  if (env) return env;
  if (existing.length > 1) {
    throw labError(
      'LAB_NOT_CHOSEN',
      `${existing.length} labs exist (${existing.join(', ')}): pick one with --name NAME, e.g. '${ambitCommand()} lab status --name ${existing[0]}', or set AMBIT_LAB=NAME`,
    );
  }
  return existing[0] ?? DEFAULT_LAB;
}
