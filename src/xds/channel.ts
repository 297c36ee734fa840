/**
 * The client side of the control-plane connection, shared by the CA and xDS clients as in ztunnel
 * (reference §4/§5.1): TLS to `https://host:port` trusting a given root, `authorization: Bearer <token>`
 * (a token file is re-read for every call), `clusterid`, extra headers, and an optional name to verify
 * the server certificate against instead of the dialled host.
 */
import { readFile } from 'node:fs/promises';
import { type ChannelCredentials, type ChannelOptions, credentials, Metadata } from '@grpc/grpc-js';
import { errorMessage } from '../errors.js';
import { xdsError } from './errors.js';

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

/** The grpc-js target for an address: the scheme is dropped, a missing one means https. */
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

export function channelCredentials(c: ControlPlaneChannelConfig): ChannelCredentials {
  const tls = credentials.createSsl(c.rootPem === undefined ? null : Buffer.from(c.rootPem));
  const perCall = credentials.createFromMetadataGenerator((_params, done) => {
    const md = new Metadata();
    if (c.clusterId) md.set('clusterid', c.clusterId);
    for (const [k, v] of Object.entries(c.headers ?? {})) md.set(k.toLowerCase(), v);
    if (!c.token) return done(null, md);
    bearer(c.token).then(
      (t) => {
        md.set('authorization', `Bearer ${t}`);
        done(null, md);
      },
      (err: Error) => done(err),
    );
  });
  return credentials.combineChannelCredentials(tls, perCall);
}

/**
 * Each channel gets its own subchannels: a client that replaces a failed channel (to dial again at once
 * instead of waiting out grpc-js's reconnect back-off, as ztunnel's clients dial on demand) must not
 * be handed the failed connection again from the process-wide pool.
 */
export function channelOptions(c: ControlPlaneChannelConfig, extra: ChannelOptions = {}): ChannelOptions {
  return {
    'grpc.use_local_subchannel_pool': 1,
    ...(c.altHostname
      ? { 'grpc.ssl_target_name_override': c.altHostname, 'grpc.default_authority': c.altHostname }
      : {}),
    ...extra,
  };
}
