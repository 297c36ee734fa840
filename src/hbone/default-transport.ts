/**
 * The tunnel transports ambit can carry HBONE with, and the one it uses unless told otherwise. The only
 * place that names an implementation: everything else takes a TunnelTransport.
 */
import { framerTransport } from './frame/transport.js';
import { h2Transport } from './h2/index.js';
import type { TunnelTransport } from './transport.js';

/** By name, for ztunnel's `--hbone-transport`: the framer (frame/) and node:http2 (h2/). */
export const TRANSPORTS: Readonly<Record<string, TunnelTransport>> = {
  framer: framerTransport,
  h2: h2Transport,
};

export const TRANSPORT_NAMES = Object.keys(TRANSPORTS);

export const defaultTransport: TunnelTransport = framerTransport;
