/**
 * Kubernetes objects to Istio's workload model: a Workload per pod (uid `<cluster>//v1/Pod/<ns>/<name>`,
 * HBONE when the agent has enrolled it) and a Service per Kubernetes Service, with each workload listing
 * the services whose selectors match it and the target port it serves each service port on.
 */
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import type { PortMap, Service, Workload } from '../../discovery/types.js';

/** Set by the node agent once redirection is in place (Istio's annotation). */
export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';

export interface ClusterIdentity {
  clusterId: string;
  clusterDomain: string;
  trustDomain: string;
}

export function serviceHostname(svc: V1Service, c: ClusterIdentity): string {
  return `${svc.metadata?.name}.${svc.metadata?.namespace}.svc.${c.clusterDomain}`;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function targetPortOf(
  port: NonNullable<NonNullable<V1Service['spec']>['ports']>[number],
  pod: V1Pod,
): number {
  const target = port.targetPort as number | string | undefined;
  if (typeof target === 'number') return target;
  if (typeof target === 'string' && /^\d+$/.test(target)) return Number(target);
  if (typeof target === 'string') {
    for (const c of pod.spec?.containers ?? [])
      for (const p of c.ports ?? []) if (p.name === target) return p.containerPort;
    return 0;
  }
  return port.port;
}

function podIps(pod: V1Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => !!ip);
  if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
  return ips;
}

/** The workload for a pod, or undefined for pods that cannot be reached yet (no IP) or use the host's network. */
export function workloadOf(
  pod: V1Pod,
  services: readonly V1Service[],
  c: ClusterIdentity,
): Workload | undefined {
  const meta = pod.metadata ?? {};
  const name = meta.name ?? '';
  const namespace = meta.namespace ?? 'default';
  const ips = podIps(pod);
  if (!name || ips.length === 0 || pod.spec?.hostNetwork) return undefined;
  const labels = meta.labels ?? {};
  const backs = new Map<string, PortMap>();
  for (const svc of services) {
    if (svc.metadata?.namespace !== namespace || !selects(svc.spec?.selector, labels)) continue;
    backs.set(
      `${namespace}/${serviceHostname(svc, c)}`,
      new Map((svc.spec?.ports ?? []).map((p) => [p.port, targetPortOf(p, pod)])),
    );
  }
  const phase = pod.status?.phase;
  const healthy = !meta.deletionTimestamp && phase !== 'Failed' && phase !== 'Succeeded';
  return {
    uid: `${c.clusterId}//v1/Pod/${namespace}/${name}`,
    name,
    namespace,
    serviceAccount: pod.spec?.serviceAccountName || 'default',
    trustDomain: c.trustDomain,
    workloadIps: ips,
    protocol: meta.annotations?.[REDIRECTION_ANNOTATION] === 'enabled' ? 'HBONE' : 'TCP',
    node: pod.spec?.nodeName ?? '',
    network: '',
    hostname: '',
    clusterId: c.clusterId,
    canonicalName:
      labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels['app'] ?? name,
    canonicalRevision:
      labels['service.istio.io/canonical-revision'] ??
      labels['app.kubernetes.io/version'] ??
      labels['version'] ??
      'latest',
    workloadName: name,
    workloadType: 'pod',
    status: healthy ? 'Healthy' : 'Unhealthy',
    capacity: 1,
    services: backs,
    authorizationPolicies: [],
  };
}

export function serviceOf(svc: V1Service, c: ClusterIdentity): Service | undefined {
  const name = svc.metadata?.name;
  const namespace = svc.metadata?.namespace;
  if (!name || !namespace) return undefined;
  const ips = (svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])).filter(
    (ip) => ip !== 'None' && ip !== '',
  );
  const ports: PortMap = new Map(
    (svc.spec?.ports ?? []).map((p) => {
      const t = p.targetPort as number | string | undefined;
      return [p.port, typeof t === 'number' ? t : t === undefined ? p.port : /^\d+$/.test(t) ? Number(t) : 0];
    }),
  );
  return {
    name,
    namespace,
    hostname: serviceHostname(svc, c),
    vips: ips.map((address) => ({ network: '', address })),
    ports,
    subjectAltNames: [],
    canonical: true,
  };
}
