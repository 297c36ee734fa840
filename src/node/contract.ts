/**
 * The node's contract: the numbers and paths that the CNI plugin, the node agent, the in-pod rules and
 * the node proxy must agree on (istio-cni `config.go`, ztunnel; the seed listing). Every side imports
 * them from here, so changing one changes it everywhere at once; a copy elsewhere would break capture.
 */

/** ztunnel's well-known ports (reference ztunnel.md §2.2, §7). */
export const OUTBOUND_PORT = 15001;
export const INBOUND_PLAINTEXT_PORT = 15006;
export const INBOUND_HBONE_PORT = 15008;
export const SOCKS5_PORT = 15080;
/** ztunnel's DNS proxy in each pod (UDP and TCP), where the in-pod rules send port 53 when DNS capture is on. */
export const DNS_PORT = 15053;
export const ADMIN_PORT = 15000;
export const METRICS_PORT = 15020;
export const READINESS_PORT = 15021;

/** Destinations that would loop back into the proxy itself ("attempted recursive call to ourselves"). */
export const ILLEGAL_PORTS: ReadonlySet<number> = new Set([
  OUTBOUND_PORT,
  INBOUND_PLAINTEXT_PORT,
  INBOUND_HBONE_PORT,
  SOCKS5_PORT,
]);

/** SO_MARK on every socket the proxy makes (ztunnel's PACKET_MARK, 1337): the rules skip packets carrying it. */
export const PROXY_MARK = 0x539;
export const PROXY_MASK = 0xfff;
/** Connmark / routing mark that sends replies of transparent connections back to the proxy. */
export const TPROXY_MARK = 0x111;
export const TPROXY_MASK = 0xfff;
/** CONNMARK --restore-mark copies all 32 bits. */
export const RESTORE_MASK = 0xffffffff;

/** Where the node agent serves ZDS and the node proxy connects (ztunnel's INPOD_UDS). */
export const ZDS_SOCKET_PATH = '/var/run/ztunnel/ztunnel.sock';

/** The node agent's run dir, shared with the plugin: it holds the plugin event socket. */
export const DEFAULT_AGENT_RUN_DIR = '/var/run/ambit';
/** The agent's socket in its run dir where the plugin posts CNI events (`POST /cmdadd`). */
export const EVENT_SOCKET_NAME = 'pluginevent.sock';

/** Kubelet probes are SNATed to these on the node, and the pod rules let them through untouched. */
export const PROBE_SNAT_V4 = '169.254.7.127';
export const PROBE_SNAT_V6 = 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff';
