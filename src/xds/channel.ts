/**
 * The client side of the control-plane connection, shared by the CA and xDS clients as in ztunnel
 * (reference §4/§5.1): TLS to `https://host:port` trusting a given root, `authorization: Bearer <token>`
 * (a token file is re-read for every call), `clusterid`, extra headers, and an optional name to verify
 * the server certificate against instead of the dialled host.
 */
import { readFile } from 'node:fs/promises';
import { errorMessage } from '../errors.js';
import { xdsError } from './errors.js';
import { GrpcChannel, type Metadata } from './grpc-client.js';

export interface ControlPlaneChannelConfig {
  /** `https://host:port` or `host:port` (CA_ADDRESS / XDS_ADDRESS). */
  address: string;
  /** PEM roots to trust; undefined = the system roots (`SYSTEM`). */
  rootPem?: string;
  /** A path (re-read per call) or a literal token (AUTH_TOKEN). Empty = send no token. */
  token?: string;
  clusterId?: string;
  /** CA_HEADER_* / XDS_HEADER_*. */
  headers?: Record<string, string>;
  /** ALT_CA_HOSTNAME / ALT_XDS_HOSTNAME. */
  altHostname?: string;
}

/** The `host:port` to dial for an address: the scheme is dropped, a missing one means https. */
export function grpcTarget(address: string): string {
  const m = /^(?:(https?):\/\/)?([^/]+)\/?$/.exec(address.trim());
  if (!m || !/:\d+$/.test(m[2]!))
    throw xdsError('ERR_CP_ADDRESS', `control plane address "${address}" is not [https://]host:port`);
  if (m[1] === 'http')
    throw xdsError('ERR_CP_ADDRESS', `control plane address "${address}": only https is supported`);
  return m[2]!;
}

async function bearer(token: string): Promise<string> {
  if (!token.includes('/')) return token;
  try {
    return (await readFile(token, 'utf8')).trim();
  } catch (err) {
    throw xdsError('ERR_TOKEN_FILE', `cannot read token file ${token}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

/** Metadata for one call: `clusterid`, the extra headers and the bearer token, read afresh. */
export async function callMetadata(c: ControlPlaneChannelConfig): Promise<Metadata> {
  const md: Metadata = {};
  if (c.clusterId) md.clusterid = c.clusterId;
  for (const [k, v] of Object.entries(c.headers ?? {})) md[k.toLowerCase()] = v;
  if (c.token) md.authorization = `Bearer ${await bearer(c.token)}`;
  return md;
}

/**
 * A channel to the control plane. It dials when a call needs it; a client that replaces a failed
 * channel dials again at once, as ztunnel's clients dial on demand rather than on a reconnect back-off.
 */
export function controlPlaneChannel(
  c: ControlPlaneChannelConfig,
  options: { maxReceiveMessageBytes?: number } = {},
): GrpcChannel {
  return new GrpcChannel({
    target: grpcTarget(c.address),
    ...(c.rootPem === undefined ? {} : { ca: c.rootPem }),
    ...(c.altHostname ? { servername: c.altHostname } : {}),
    metadata: () => callMetadata(c),
    ...options,
  });
}
