/** ztunnel's well-known ports (reference ztunnel.md §2.2, §7). */
export const OUTBOUND_PORT = 15001;
export const INBOUND_PLAINTEXT_PORT = 15006;
export const INBOUND_HBONE_PORT = 15008;
export const SOCKS5_PORT = 15080;
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
