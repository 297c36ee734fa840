/**
 * A node's route to a lab-wide service on the host: a listener on 127.0.0.1:<port> inside every node's
 * netns that forwards each connection to the host's loopback (a node's netns cannot reach it), the way
 * a node reaches its control plane. TLS passes through untouched.
 */
import { connect, type Server, type Socket } from 'node:net';
import { listenInNetns, NetnsHandle } from '../../sys/index.js';
import type { LabState } from '../state.js';

function forward(client: Socket, host: string, port: number): void {
  const upstream = connect({ host, port });
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
  client.pipe(upstream).pipe(client);
}

/** Listens on 127.0.0.1:`nodePort` in each node and forwards to 127.0.0.1:`hostPort` here. */
export async function routeIntoNodes(state: LabState, nodePort: number, hostPort: number): Promise<Server[]> {
  const servers: Server[] = [];
  try {
    for (const node of state.nodes) {
      const netns = NetnsHandle.open(node.netnsPath);
      try {
        const server = await listenInNetns(netns, { host: '127.0.0.1', port: nodePort });
        server.on('connection', (s: Socket) => forward(s, '127.0.0.1', hostPort));
        servers.push(server);
      } finally {
        netns.close();
      }
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
  return servers;
}
