/**
 * The names and numbers of the in-pod rules themselves: chains, the policy route, the probe set. What the
 * rules share with the proxy and the plugin (ports, marks, probe addresses) is the node contract.
 */
import { PROBE_SNAT_V4, PROBE_SNAT_V6 } from '../node/contract.js';

/** The policy route that returns TPROXY replies to the proxy (fwmark TPROXY_MARK -> table 100). */
export const ROUTE_TABLE = 100;
export const RULE_PRIORITY = 32764;

/**
 * The conntrack zone of the proxy's own DNS traffic with upstream resolvers (istio-cni's raw rules): its
 * flows live apart from the app's redirected ones, so a proxy query and an app query from the same port
 * never collide in conntrack (istio/istio#33469).
 */
export const DNS_CT_ZONE = 1;
/** The port of DNS, captured when DNS capture is on. */
export const DNS_SERVICE_PORT = 53;

export const PROBE_SET_PREFIX = 'istio-inpod-probes';

export const CHAIN_PRERT = 'ISTIO_PRERT';
export const CHAIN_OUTPUT = 'ISTIO_OUTPUT';
export const CHAIN_POSTRT = 'ISTIO_POSTRT';

export type Family = 'ipv4' | 'ipv6';
export type InboundMode = 'tproxy' | 'redirect';

export function probeSnatAddress(family: Family): string {
  return family === 'ipv4' ? PROBE_SNAT_V4 : PROBE_SNAT_V6;
}

export function probeSetName(family: Family): string {
  return `${PROBE_SET_PREFIX}-${family === 'ipv4' ? 'v4' : 'v6'}`;
}

export function loopbackHost(family: Family): string {
  return family === 'ipv4' ? '127.0.0.1' : '::1';
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
