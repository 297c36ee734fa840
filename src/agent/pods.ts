/**
 * What the agent reads from a Pod object: its UID, IPs, phase, the redirection annotation and the
 * ZDS workload info. One place, so the informer logic and the dataplane agree on every field.
 */
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { isAmbientPod, type Labels } from '../cni/selector.js';
import { unmapIPv4 } from '../net/ip.js';
import type { WorkloadInfo } from '../zds/index.js';
import type { AgentSelection } from './config.js';

export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';
export type RedirectionState = 'enabled' | 'pending';

export function podUid(pod: V1Pod): string {
  return pod.metadata?.uid ?? '';
}

export function podRef(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
}

/** status.podIPs, else status.podIP; IPv4-mapped addresses unmapped, duplicates dropped. */
export function podIps(pod: V1Pod): string[] {
  const list = pod.status?.podIPs?.map((p) => p.ip).filter((ip): ip is string => !!ip) ?? [];
  const ips = list.length > 0 ? list : pod.status?.podIP ? [pod.status.podIP] : [];
  return [...new Set(ips.map(unmapIPv4))];
}

export function redirectionState(pod: V1Pod): RedirectionState | undefined {
  const v = pod.metadata?.annotations?.[REDIRECTION_ANNOTATION];
  return v === 'enabled' || v === 'pending' ? v : undefined;
}

export function isTerminal(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

/** The node proxy's own pods are never captured, fanned out or snapshotted. */
export function isZtunnelPod(pod: V1Pod, systemNamespace: string): boolean {
  return pod.metadata?.namespace === systemNamespace && pod.metadata?.labels?.['app'] === 'ztunnel';
}

export function workloadInfo(pod: V1Pod): WorkloadInfo {
  return {
    name: pod.metadata?.name ?? '',
    namespace: pod.metadata?.namespace ?? '',
    serviceAccount: pod.spec?.serviceAccountName ?? 'default',
  };
}

export function namespaceLabels(ns: V1Namespace | undefined): Labels {
  return ns?.metadata?.labels ?? {};
}

/** `should` of the informer logic: the selectors match and the namespace is not excluded. */
export function shouldBeEnrolled(pod: V1Pod, ns: V1Namespace, selection: AgentSelection): boolean {
  const namespace = pod.metadata?.namespace ?? '';
  if (selection.excludeNamespaces.includes(namespace)) return false;
  return isAmbientPod(pod, namespaceLabels(ns), selection.selectors);
}

export function sameIpSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((ip) => b.includes(ip));
}
