/**
 * The lab's control plane process (`ambit control-plane` in-process): Istio's CA and workload
 * discovery on the host's loopback, fed by the lab API server, with a route at 127.0.0.1:15012 in
 * every node (where the node's ztunnel dials it, as it would dial istiod).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { startControlPlane } from '../../controlplane/index.js';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { loadLab } from '../lab.js';
import { serviceAccountConfig } from './kube.js';
import { ClusterLayout, CONTROL_PLANE_PORT, TRUST_DOMAIN } from './layout.js';
import { routeIntoNodes } from './node-route.js';

const log = logger('ambit::lab::controlplane');

export async function runControlPlaneProcess(lab: string): Promise<number> {
  const layout = new ClusterLayout(lab);
  const state = loadLab(lab);
  const cp = await startControlPlane({
    // istiod's own account (its chart's roles), reached at the API server's current address.
    kubeconfig: serviceAccountConfig(lab, layout.controlPlaneToken, 'istiod'),
    caDir: layout.caDir,
    listen: '127.0.0.1:0',
    trustDomain: TRUST_DOMAIN,
  });
  const routes = await routeIntoNodes(state, CONTROL_PLANE_PORT, cp.port);
  mkdirSync(dirname(layout.controlPlaneRootCert), { recursive: true });
  writeFileSync(layout.controlPlaneRootCert, cp.rootPem);
  // Written last: its presence tells `lab up` that the control plane and every node route are up.
  writeFileSync(layout.controlPlaneReadyFile, `${cp.address}\n`);
  log.info('control plane up', { address: cp.address, nodes: state.nodes.length });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('shutting down', { signal });
  for (const r of routes) r.close();
  try {
    await cp.close();
  } catch (err) {
    log.warn('error while closing', { error: errorMessage(err) });
  }
  return 0;
}
