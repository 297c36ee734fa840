/**
 * The lab API server process: the lab API server on the host's loopback (for kubectl and the
 * kubelets), plus a listener on 127.0.0.1:6443 inside every node's netns that forwards to it, the
 * way a node reaches its control plane; agents inside the nodes use that address. Each node's
 * kubelet gets its own credential (user system:node:<node>), rewritten with the URL at every start.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { nodeUser, type ServiceFamily, startApiServer, writeKubeconfig } from '../apiserver/index.js';
import { loadLab } from '../lab.js';
import type { IpFamily } from '../state.js';
import { ClusterLayout, NODE_APISERVER_PORT } from './layout.js';
import { routeIntoNodes } from './node-route.js';

const log = logger('ambit::lab::apiserver');

/** Services get cluster IPs in the lab's families, primary first, as its pods get pod IPs. */
function serviceFamiliesOf(family: IpFamily | undefined): ServiceFamily[] {
  if (family === 'ipv6') return ['IPv6'];
  if (family === 'dual') return ['IPv4', 'IPv6'];
  return ['IPv4'];
}

export async function runApiServerProcess(lab: string): Promise<number> {
  const layout = new ClusterLayout(lab);
  const state = loadLab(lab);
  mkdirSync(dirname(layout.apiserverState), { recursive: true });
  const api = await startApiServer({
    listen: '127.0.0.1:0',
    stateFile: layout.apiserverState,
    kubeconfigPath: layout.kubeconfig,
    users: state.nodes.map((n) => nodeUser(n.name)),
    serviceFamilies: serviceFamiliesOf(state.ipFamily),
  });
  const port = Number(new URL(api.url).port);
  const forwarders = await routeIntoNodes(state, NODE_APISERVER_PORT, port);
  for (const node of state.nodes) {
    const kubeconfig = layout.kubeletKubeconfig(node.name);
    mkdirSync(dirname(kubeconfig), { recursive: true });
    writeKubeconfig(
      kubeconfig,
      api.url,
      api.userToken(nodeUser(node.name).name),
      api.caPem,
      `${node.name}-kubelet`,
    );
    log.info('node route to the API server', { node: node.name, listen: `127.0.0.1:${NODE_APISERVER_PORT}` });
  }
  // Written last: its presence tells `lab up` that the API server and every node route are up.
  writeFileSync(layout.apiserverUrlFile, `${api.url}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('shutting down', { signal });
  for (const f of forwarders) f.close();
  try {
    await api.close();
  } catch (err) {
    log.warn('error while closing', { error: errorMessage(err) });
  }
  return 0;
}
