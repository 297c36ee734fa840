/**
 * The node proxy process: start-up checks, workload store, readiness/metrics/admin servers, the ZDS
 * client with a proxy per enrolled pod, and the graceful shutdown that lets a successor take over.
 * Order follows upstream: state first, servers, then ZDS (it starts only once the state is loaded).
 */

import { readFileSync } from 'node:fs';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { serveAdmin } from '../admin/admin-server.js';
import type { HttpServer } from '../admin/http-server.js';
import { logger, setLogLevel } from '../admin/log.js';
import { serveMetrics } from '../admin/metrics-server.js';
import { Readiness, serveReadiness } from '../admin/readiness.js';
import { LocalFileSource } from '../discovery/local-file-source.js';
import { WorkloadStore } from '../discovery/store.js';
import { XdsClient } from '../discovery/xds-client.js';
import { AmbitError, errorMessage } from '../errors.js';
import type { CertificateAuthority } from '../identity/ca.js';
import { IstioCaClient } from '../identity/ca-client.js';
import { LocalCa } from '../identity/local-ca.js';
import { ConnectionTracker } from '../policy/tracker.js';
import type { ZtunnelConfig } from './config.js';
import { createHboneHooks, plaintextInboundPolicy } from './hbone/index.js';
import {
  type InPodConfig,
  type InPodProxyFactory,
  startInPod,
  type WorkloadStateEntry,
} from './inpod/index.js';
import { MigratingProxyFactory } from './listener-migration.js';
import { TrafficMetrics } from './metrics.js';
import type { ProxyDeps } from './proxy/context.js';
import { PodProxyFactory } from './proxy/pod-proxy.js';
import { verifySyscalls } from './startup.js';
import { registerWorkloadManagerMetrics } from './workload-manager-metrics.js';

const log = logger('ztunnel::app');

const STATE_TASK = 'state manager';
const PROXY_TASK = 'workload proxy manager';
/** Upstream's connect timeout for every upstream TCP connection. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Exit code when a second SIGINT cuts the drain short (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/** CA_ROOT_CA / XDS_ROOT_CA: a PEM file, inline PEM, or SYSTEM (undefined = the system roots). */
function roots(value: string | undefined, source: string): string | undefined {
  if (value === undefined || value === '' || value === 'SYSTEM') return undefined;
  if (value.startsWith('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (err) {
    throw new AmbitError(
      'ERR_CONFIG',
      `${source}=${value}: cannot read the root certificates: ${errorMessage(err)}`,
    );
  }
}

/** Where workload certificates come from: Istio's CA, the lab's local CA, or nowhere (no HBONE). */
async function certificateAuthority(config: ZtunnelConfig): Promise<CertificateAuthority | undefined> {
  if (config.caAddress) {
    return new IstioCaClient({
      address: config.caAddress,
      rootPem: roots(config.caRootCa ?? config.xdsRootCa, '--ca-root-ca'),
      token: config.authToken,
      clusterId: config.clusterId,
    });
  }
  if (config.localCaDir) return LocalCa.open(config.localCaDir, { trustDomain: config.trustDomain });
  return undefined;
}

function applyLogDirectives(config: ZtunnelConfig): void {
  for (const d of config.log) setLogLevel(d.level, d.target);
}

/** Runs until SIGTERM, SIGINT or POST /quitquitquit has drained every pod; resolves to the exit code. */
export async function runZtunnel(config: ZtunnelConfig): Promise<number> {
  applyLogDirectives(config);
  log.info('shared proxy mode - in-pod mode enabled');
  verifySyscalls(config.packetMark);

  const readiness = new Readiness();
  readiness.register(STATE_TASK);
  readiness.register(PROXY_TASK);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  // Opened first: a bad CA directory or root file must fail start-up before anything is listening.
  const ca = await certificateAuthority(config);
  const store = new WorkloadStore({ node: config.nodeName });
  let source: LocalFileSource | undefined;
  let xds: XdsClient | undefined;
  if (config.localXdsPath) {
    source = new LocalFileSource(config.localXdsPath, store);
    source.load(); // a bad file at start-up is fatal; later a bad edit keeps the previous state
    source.watch();
    readiness.release(STATE_TASK);
  } else if (config.xdsAddress) {
    xds = new XdsClient({
      address: config.xdsAddress,
      rootPem: roots(config.xdsRootCa, '--xds-root-ca'),
      token: config.authToken,
      clusterId: config.clusterId,
      store,
      node: {
        id: `ztunnel~${config.instanceIp}~${config.podName}.${config.podNamespace}~${config.podNamespace}.svc.cluster.local`,
        metadata: {
          NAME: config.podName,
          NAMESPACE: config.podNamespace,
          INSTANCE_IPS: config.instanceIp,
          ...(config.nodeName ? { NODE_NAME: config.nodeName } : {}),
        },
      },
    });
    // Ready only once the first workload state arrived: before it every destination would be passthrough.
    xds.once('ready', () => readiness.release(STATE_TASK));
    xds.start();
  } else readiness.release(STATE_TASK);

  // HBONE needs workload certificates; without a CA the mesh paths are plaintext only.
  const hbone = ca
    ? createHboneHooks({
        ca,
        store,
        trustDomain: config.trustDomain,
        certTtlSeconds: config.secretTtlSeconds,
        keepalive: config.hboneKeepalive,
      })
    : undefined;
  if (!hbone)
    log.warn('no certificate authority configured (--ca-address or --local-ca-dir): HBONE is disabled');

  let requestShutdown: (reason: string) => void = () => {};
  // The admin server starts before ZDS; pods appear in its dump once the manager runs.
  let workloadState: () => Record<string, WorkloadStateEntry> = () => ({});
  const servers: HttpServer[] = [];
  try {
    servers.push(await serveReadiness(config.readinessAddr, readiness));
    servers.push(await serveMetrics(config.metricsAddr, registry));
    servers.push(
      await serveAdmin(config.adminAddr, {
        dump: { store, workloadState: () => workloadState(), certificates: hbone?.certificates, config },
        startupLogLevels: config.log,
        quit: () => requestShutdown('POST /quitquitquit'),
      }),
    );
  } catch (err) {
    source?.close();
    await Promise.all(servers.map((s) => s.close()));
    throw err;
  }

  // Without HBONE, plaintext policies still apply (and a policy change still cuts what it denies).
  const tracker = hbone ? undefined : new ConnectionTracker(store);
  const deps: ProxyDeps = {
    store,
    metrics: new TrafficMetrics(registry),
    mark: config.packetMark,
    portReuse: config.inpodPortReuse,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    drainDeadlineMs: config.drainDeadlineMs,
    socks5: config.socks5,
    hbone: hbone?.hooks,
    inboundPolicy: tracker ? plaintextInboundPolicy(store, tracker) : hbone?.inboundPolicy,
  };
  const pods = new PodProxyFactory(deps);
  const factory: InPodProxyFactory = config.inpodPortReuse ? new MigratingProxyFactory(pods) : pods;
  const inPod: InPodConfig = {
    enabled: true,
    uds: config.inpodUds,
    portReuse: config.inpodPortReuse,
    mark: config.packetMark,
  };
  const manager = startInPod({ config: inPod, factory });
  registerWorkloadManagerMetrics(registry, manager.state);
  workloadState = () => manager.state.workloadState();
  manager.state.on('readiness', (ready) => {
    if (ready) readiness.release(PROXY_TASK);
    else readiness.register(PROXY_TASK);
  });

  let draining = false;
  const onSigint = () => {
    if (!draining) return requestShutdown('SIGINT');
    log.warn('received second signal, exiting immediately');
    process.exit(EXIT_INTERRUPTED);
  };
  const onSigterm = () => requestShutdown('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const reason = await new Promise<string>((resolve) => {
    requestShutdown = resolve;
  });
  draining = true;
  requestShutdown = () => {};

  log.info('shutting down: draining pod proxies', { reason, deadline: `${config.drainDeadlineMs}ms` });
  // A guard, in case something other than connections keeps the drain from finishing.
  const guard = setTimeout(() => {
    log.error('drain did not finish after the deadline, exiting');
    process.exit(1);
  }, config.drainDeadlineMs + 10_000);
  guard.unref();
  try {
    await manager.stop();
  } catch (err) {
    log.error('drain failed', { error: errorMessage(err) });
  }
  source?.close();
  xds?.close();
  hbone?.close();
  if (ca instanceof IstioCaClient) ca.close();
  tracker?.close();
  await Promise.all(servers.map((s) => s.close()));
  clearTimeout(guard);
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onSigterm);
  log.info('shutdown complete');
  return 0;
}
