/**
 * The numbers the in-pod rules, the node proxy's sockets and the host probe rules must agree on
 * (istio-cni `config.go`; seed listing). Changing one here without ztunnel breaks capture.
 */

/** SO_MARK on every socket the proxy makes: rules skip packets carrying it. */
export const PROXY_MARK = 0x539;
export const PROXY_MASK = 0xfff;
/** Connmark / routing mark that sends replies of transparent connections back to the proxy. */
export const TPROXY_MARK = 0x111;
export const TPROXY_MASK = 0xfff;
/** CONNMARK --restore-mark copies all 32 bits. */
export const RESTORE_MASK = 0xffffffff;

export const ROUTE_TABLE = 100;
export const RULE_PRIORITY = 32764;

// The proxy's listener ports are the proxy's contract; the rules point at them.
export {
  INBOUND_HBONE_PORT as PORT_INBOUND_HBONE,
  INBOUND_PLAINTEXT_PORT as PORT_INBOUND_PLAINTEXT,
  OUTBOUND_PORT as PORT_OUTBOUND,
} from '../ztunnel/ports.js';

/** Kubelet probes are SNATed to these on the node, and the pod rules let them through untouched. */
export const PROBE_SNAT_V4 = '169.254.7.127';
export const PROBE_SNAT_V6 = 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff';
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
