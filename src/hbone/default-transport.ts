/**
 * The tunnel transports ambit can carry HBONE with, and the one it uses unless told otherwise. The only
 * place that names an implementation: everything else takes a TunnelTransport.
 */
import { h2Transport } from './h2/index.js';
import type { TunnelTransport } from './transport.js';

export const defaultTransport: TunnelTransport = h2Transport;
