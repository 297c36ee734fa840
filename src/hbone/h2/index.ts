/**
 * HBONE's tunnel over node:http2: the one folder that imports node:http2.
 */
import type { TunnelTransport } from '../transport.js';
import { connectH2 } from './client.js';
import { H2TunnelServer } from './server.js';

export const h2Transport: TunnelTransport = {
  name: 'h2',
  connect: connectH2,
  createServer: (handler, options) => new H2TunnelServer(handler, options),
};
