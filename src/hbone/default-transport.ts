/**
 * The tunnel transport ambit carries HBONE with: the framer (frame/). The only place that names an
 * implementation: everything else takes a TunnelTransport.
 */
import { framerTransport } from './frame/transport.js';
import type { TunnelTransport } from './transport.js';

export const defaultTransport: TunnelTransport = framerTransport;
