/**
 * The lab network options `lab up` and `demo` share, checked as usage errors (exit 2):
 * `--ip-family`, `--primary-cni`, and `--node-cidr` / `--pod-cidr`: one range, or one per family
 * separated by a comma, as kube-controller-manager's `--cluster-cidr` and kind's `podSubnet` take a
 * dual-stack pair (`10.244.0.0/16,fd00:10:244::/56`). Here only the family of each range is decided and
 * checked against the lab's `--ip-family`; the ranges themselves are checked by the lab (LAB_BAD_CIDR).
 */
import { IP_FAMILIES, type IpFamily, isPrimaryCni, PRIMARY_CNIS, type PrimaryCni } from '../lab/index.js';
import { UsageError } from './command.js';

export function ipFamilyOption(value: string | undefined): IpFamily | undefined {
  if (value === undefined) return undefined;
  if (!(IP_FAMILIES as readonly string[]).includes(value))
    throw new UsageError(`--ip-family must be one of ${IP_FAMILIES.join(', ')} (got '${value}')`);
  return value as IpFamily;
}

export function primaryCniOption(value: string | undefined): PrimaryCni | undefined {
  if (value === undefined) return undefined;
  if (!isPrimaryCni(value))
    throw new UsageError(`--primary-cni must be one of ${PRIMARY_CNIS.join(', ')} (got '${value}')`);
  return value;
}

export interface CidrsByFamily {
  v4?: string;
  v6?: string;
}

export function cidrsByFamily(value: string | undefined, flag: string, ipFamily: IpFamily): CidrsByFamily {
  if (value === undefined) return {};
  const parts = value.split(',').map((p) => p.trim());
  if (parts.length > 2 || parts.some((p) => p === ''))
    throw new UsageError(
      `--${flag} takes one range, or an IPv4 and an IPv6 range separated by a comma (got '${value}')`,
    );
  const out: CidrsByFamily = {};
  for (const part of parts) {
    const family = part.split('/')[0]!.includes(':') ? 'v6' : 'v4';
    if (out[family] !== undefined)
      throw new UsageError(`--${flag} has two ${family === 'v4' ? 'IPv4' : 'IPv6'} ranges (got '${value}')`);
    out[family] = part;
  }
  if (out.v6 !== undefined && ipFamily === 'ipv4')
    throw new UsageError(`--${flag} ${out.v6} is an IPv6 range; add --ip-family ipv6 or dual`);
  if (out.v4 !== undefined && ipFamily === 'ipv6')
    throw new UsageError(`--${flag} ${out.v4} is an IPv4 range, and --ip-family ipv6 has no IPv4; use dual`);
  return out;
}
