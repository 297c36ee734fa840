/**
 * A Service's cluster IPs by IP family, as kube-apiserver assigns them: `spec.ipFamilyPolicy`
 * (SingleStack by default, PreferDualStack, RequireDualStack) and `spec.ipFamilies` pick the families
 * among the cluster's (its service CIDRs, primary first), and each gets a free address of its range:
 * IPv4 from 10.96.0.0/16, IPv6 from fd00:10:96::/112 (unique local, as kind's default).
 */
import { isIPv6 } from 'node:net';
import { invalid, type StatusCause } from './status.js';

export type ServiceFamily = 'IPv4' | 'IPv6';
const POLICIES = ['SingleStack', 'PreferDualStack', 'RequireDualStack'];

/** The n-th address of the family's service range; 1..9 stay free, as the IPv4 allocator always did. */
function candidate(family: ServiceFamily, n: number): string {
  return family === 'IPv4' ? `10.96.${n >> 8}.${n & 255}` : `fd00:10:96::${n.toString(16)}`;
}

function firstFree(family: ServiceFamily, used: ReadonlySet<string>, causes: StatusCause[]): string {
  for (let n = 10; n < 65535; n++) {
    const ip = candidate(family, n);
    if (!used.has(ip)) return ip;
  }
  causes.push({
    reason: 'FieldValueInvalid',
    field: 'spec.clusterIP',
    message: `no free ${family} cluster IP`,
  });
  return '';
}

/** Which families the Service gets, or the causes why its policy and families do not fit the cluster. */
function familiesOf(
  spec: Record<string, unknown>,
  cluster: readonly ServiceFamily[],
  causes: StatusCause[],
): ServiceFamily[] {
  const policy = spec['ipFamilyPolicy'] ?? 'SingleStack';
  if (typeof policy !== 'string' || !POLICIES.includes(policy)) {
    causes.push({
      reason: 'FieldValueNotSupported',
      field: 'spec.ipFamilyPolicy',
      message: `Unsupported value: "${String(policy)}": supported values: "${POLICIES.join('", "')}"`,
    });
    return [];
  }
  const asked = spec['ipFamilies'];
  if (asked !== undefined && !Array.isArray(asked)) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.ipFamilies', message: 'must be a list' });
    return [];
  }
  const wanted = (asked as unknown[] | undefined) ?? [];
  wanted.forEach((f, i) => {
    if (!cluster.includes(f as ServiceFamily))
      causes.push({
        reason: 'FieldValueInvalid',
        field: `spec.ipFamilies[${i}]`,
        message: `Invalid value: "${String(f)}": not configured on this cluster (service CIDRs: ${cluster.join(', ')})`,
      });
  });
  if (wanted.length > 2 || (wanted.length === 2 && wanted[0] === wanted[1]))
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.ipFamilies',
      message: 'at most one of each family',
    });
  if (wanted.length === 2 && policy === 'SingleStack')
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.ipFamilyPolicy',
      message: 'must be RequireDualStack or PreferDualStack when multiple ipFamilies are specified',
    });
  if (policy === 'RequireDualStack' && cluster.length < 2)
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.ipFamilyPolicy',
      message: 'Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services',
    });
  if (causes.length > 0) return [];
  const first = (wanted as ServiceFamily[]).length > 0 ? (wanted as ServiceFamily[]) : [cluster[0]!];
  if (policy === 'SingleStack') return first.slice(0, 1);
  // Dual stack: the asked family first, then the cluster's other one.
  return [...first, ...cluster.filter((f) => !first.includes(f))].slice(0, 2);
}

/**
 * Fills in clusterIP, clusterIPs, ipFamilies and ipFamilyPolicy of a new Service (not headless, no
 * clusterIP given); throws 422 Invalid when its families do not fit the cluster.
 */
export function assignClusterIps(
  spec: Record<string, unknown>,
  cluster: readonly ServiceFamily[],
  used: ReadonlySet<string>,
): void {
  const explicit = spec['clusterIP'];
  if (typeof explicit === 'string' && explicit !== '') {
    // Given by the creator (or headless): kept, its family recorded.
    spec['clusterIPs'] ??= [explicit];
    if (explicit !== 'None') {
      spec['ipFamilies'] ??= [isIPv6(explicit) ? 'IPv6' : 'IPv4'];
      spec['ipFamilyPolicy'] ??= 'SingleStack';
    }
    return;
  }
  const causes: StatusCause[] = [];
  const families = familiesOf(spec, cluster, causes);
  const ips = families.map((f) => firstFree(f, used, causes));
  if (causes.length > 0) throw invalid('Service', '', '', causes);
  spec['clusterIP'] = ips[0];
  spec['clusterIPs'] = ips;
  spec['ipFamilies'] = families;
  spec['ipFamilyPolicy'] ??= 'SingleStack';
}
