/**
 * The node proxy process: start-up checks, workload store, readiness/metrics/admin servers, the ZDS
 * client with a proxy per enrolled pod, and the graceful shutdown that lets a successor take over.
 * Order follows upstream: state first, servers, then ZDS (it starts only once the state is loaded).
 */

import { readFileSync } from 'node:fs';
import type { LocalFileSource } from '../discovery/local-file-source.js';
import { WorkloadStore } from '../discovery/store.js';
import { XdsClient } from '../discovery/xds-client.js';
import { errorMessage } from '../errors.js';
import type { CertificateAuthority } from '../identity/ca.js';
import { IstioCaClient } from '../identity/ca-client.js';
import { SOCKS5_PORT } from '../node/contract.js';
import type { HttpServer } from '../runtime/http-server.js';
import { IdleMemoryRelease } from '../runtime/idle-memory.js';
import type { RequestShutdown, Running } from '../runtime/lifecycle.js';
import { logger, setLogLevel } from '../runtime/log.js';
import { Registry, registerProcessMetrics } from '../runtime/metrics.js';
import { serveMetrics } from '../runtime/metrics-server.js';
import { configError } from '../runtime/options.js';
import { FdBudget } from '../sys/index.js';
import { serveAdmin } from './admin/admin-server.js';
import { Readiness, serveReadiness } from './admin/readiness.js';
import type { ZtunnelConfig } from './config.js';
import { DNS_UPSTREAM_PORT } from './dns/forwarder.js';
import { DnsMetrics } from './dns/metrics.js';
import { readResolvConf } from './dns/resolv-conf.js';
import { missingNodeFlags } from './heap.js';
import {
  type InPodConfig,
  type InPodProxyFactory,
  startInPod,
  type WorkloadStateEntry,
} from './inpod/index.js';
import { MigratingProxyFactory } from './inpod/listener-migration.js';
import { registerWorkloadManagerMetrics } from './inpod/metrics.js';
import { TrafficMetrics } from './proxy/metrics.js';
import { ProxyFactory } from './proxy-factory.js';
import { verifySyscalls } from './startup.js';

const log = logger('ztunnel::app');
/** The process's lifecycle log (runtime/lifecycle.ts) is Istio's ztunnel::app too. */
export const appLog = log;

const STATE_TASK = 'state manager';
const PROXY_TASK = 'workload proxy manager';
/** Upstream's connect timeout for every upstream TCP connection. */
const CONNECT_TIMEOUT_MS = 10_000;

/** CA_ROOT_CA / XDS_ROOT_CA: a PEM file, inline PEM, or SYSTEM (undefined = the system roots). */
function roots(value: string | undefined, source: string): string | undefined {
  if (value === undefined || value === '' || value === 'SYSTEM') return undefined;
  if (value.startsWith('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (err) {
    throw configError(`${source}=${value}: cannot read the root certificates: ${errorMessage(err)}`);
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
  if (config.localCaDir) {
    // Loaded only here: the local CA signs with @peculiar/x509, which a ztunnel fed by Istio's CA
    // never needs (it would cost ~19 MiB of resident memory).
    const { LocalCa } = await import('../identity/local-ca.js');
    return LocalCa.open(config.localCaDir, { trustDomain: config.trustDomain });
  }
  return undefined;
}

/** The DNS proxy's upstream resolvers, read once at start as ztunnel reads its resolv.conf. */
function dnsOptions(config: ZtunnelConfig) {
  let servers: string[];
  try {
    servers = readResolvConf(config.dnsResolvConf);
  } catch (err) {
    throw configError(
      `--dns-resolv-conf=${config.dnsResolvConf}: cannot read the upstream resolvers (or set DNS_CAPTURE=false): ${errorMessage(err)}`,
    );
  }
  return {
    upstreams: servers.map((host) => ({ host, port: DNS_UPSTREAM_PORT })),
    clusterDomain: config.clusterDomain,
  };
}

function applyLogDirectives(config: ZtunnelConfig): void {
  for (const d of config.log) setLogLevel(d.level, d.target);
}

/** What start-up opened so far, closed newest first when a later step fails. */
class StartupResources {
  readonly #closers: (() => unknown)[] = [];

  add(close: () => unknown): void {
    this.#closers.push(close);
  }

  async closeAll(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        log.warn('error while undoing a failed start-up', { error: errorMessage(err) });
      }
    }
  }
}

/**
 * Starts ztunnel (runtime/lifecycle.ts runs it until SIGTERM, SIGINT or POST /quitquitquit, then its
 * `shutdown` drains every pod). Rejects when start-up fails (a port taken, a bad CA directory, ...),
 * after closing whatever it had opened: a process that cannot serve must end rather than linger
 * half-started.
 */
export async function startZtunnel(
  config: ZtunnelConfig,
  requestShutdown: RequestShutdown,
): Promise<Running> {
  applyLogDirectives(config);
  log.info('shared proxy mode - in-pod mode enabled');
  const missing = missingNodeFlags(process.execArgv);
  if (missing.length > 0) {
    // Still correct, only slower (V8 runs full collections every few ms under bulk traffic) and
    // without the full collection that lets memory go back after load.
    log.warn('node started without the ztunnel heap flags: throughput will be lower', {
      missing: missing.join(' '),
      hint: `start with: node ${missing.join(' ')} bin/ambit ztunnel`,
    });
  }
  verifySyscalls(config.packetMark);

  const readiness = new Readiness();
  readiness.register(STATE_TASK);
  readiness.register(PROXY_TASK);
  const registry = new Registry();
  registerProcessMetrics(registry);

  const opened = new StartupResources();
  // The admin server starts before ZDS; pods appear in its dump once the manager runs.
  let workloadState: () => Record<string, WorkloadStateEntry> = () => ({});
  let ca: CertificateAuthority | undefined;
  let source: LocalFileSource | undefined;
  let xds: XdsClient | undefined;
  let proxies: ProxyFactory | undefined;
  const store = new WorkloadStore({ node: config.nodeName });
  const servers: HttpServer[] = [];
  let manager: ReturnType<typeof startInPod>;
  try {
    // Opened first: a bad CA directory or root file must fail start-up before anything is listening.
    ca = await certificateAuthority(config);
    const openedCa = ca;
    if (openedCa instanceof IstioCaClient) opened.add(() => openedCa.close());
    if (config.localXdsPath) {
      // Loaded only here: the YAML parser is for local files, not for workloads from xDS.
      const { LocalFileSource } = await import('../discovery/local-file-source.js');
      source = new LocalFileSource(config.localXdsPath, store);
      const file = source;
      opened.add(() => file.close());
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
      const client = xds;
      opened.add(() => client.close());
      // Ready only once the first workload state arrived: before it every destination would be passthrough.
      xds.once('ready', () => readiness.release(STATE_TASK));
    } else readiness.release(STATE_TASK);

    // HBONE needs workload certificates; without a CA the mesh paths are plaintext only.
    proxies = new ProxyFactory({
      store,
      metrics: new TrafficMetrics(registry),
      mark: config.packetMark,
      portReuse: config.inpodPortReuse,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      drainDeadlineMs: config.drainDeadlineMs,
      socks5: config.socks5,
      ...(config.dnsCapture ? { dns: { ...dnsOptions(config), metrics: new DnsMetrics(registry) } } : {}),
      ipv6Enabled: config.ipv6Enabled,
      fds: new FdBudget(),
      ca,
      trustDomain: config.trustDomain,
      certTtlSeconds: config.secretTtlSeconds,
      handshakeTimeoutMs: config.hboneHandshakeTimeoutMs,
      keepalive: config.hboneKeepalive,
    });
    const pods = proxies;
    opened.add(() => pods.close());
    if (!pods.hbone)
      log.warn('no certificate authority configured (--ca-address or --local-ca-dir): HBONE is disabled');

    // Every listener is bound before the control plane is dialled: a taken port ends start-up here.
    for (const serve of [
      () => serveReadiness(config.readinessAddr, readiness),
      () => serveMetrics(config.metricsAddr, registry),
      () =>
        serveAdmin(config.adminAddr, {
          dump: {
            store,
            workloadState: () => workloadState(),
            certificates: pods.hbone?.certificates,
            // Istio's dump shows socks5Addr (null when UNSTABLE_ENABLE_SOCKS5 is off): tools read it there.
            config: {
              ...config,
              socks5Addr: config.socks5 ? { host: '127.0.0.1', port: SOCKS5_PORT } : null,
            },
          },
          startupLogLevels: config.log,
          quit: () => requestShutdown('POST /quitquitquit'),
        }),
    ]) {
      const server = await serve();
      servers.push(server);
      opened.add(() => server.close());
    }
    xds?.start();

    const factory: InPodProxyFactory = config.inpodPortReuse ? new MigratingProxyFactory(pods) : pods;
    const inPod: InPodConfig = {
      enabled: true,
      uds: config.inpodUds,
      portReuse: config.inpodPortReuse,
      mark: config.packetMark,
    };
    manager = startInPod({ config: inPod, factory });
  } catch (err) {
    log.error('failed to start', { error: errorMessage(err) });
    await opened.closeAll();
    throw err;
  }
  const state = manager.state;
  registerWorkloadManagerMetrics(registry, state);
  workloadState = () => state.workloadState();
  state.on('readiness', (ready) => {
    if (ready) readiness.release(PROXY_TASK);
    else readiness.register(PROXY_TASK);
  });

  const inPodManager = manager;
  const memory = new IdleMemoryRelease().start();
  return {
    shutdown: async (reason: string) => {
      log.info('shutting down: draining pod proxies', { reason, deadline: `${config.drainDeadlineMs}ms` });
      // A guard, in case something other than connections keeps the drain from finishing.
      const guard = setTimeout(() => {
        log.error('drain did not finish after the deadline, exiting');
        process.exit(1);
      }, config.drainDeadlineMs + 10_000);
      guard.unref();
      memory.stop();
      try {
        await inPodManager.stop();
      } catch (err) {
        log.error('drain failed', { error: errorMessage(err) });
      }
      source?.close();
      xds?.close();
      proxies?.close();
      if (ca instanceof IstioCaClient) ca.close();
      await Promise.all(servers.map((s) => s.close()));
      clearTimeout(guard);
      log.info('shutdown complete');
    },
  };
}
