/**
 * `startControlPlane`: one TLS gRPC port (15012, as istiod) serving the Istio CA
 * (`IstioCertificateService/CreateCertificate`) and delta ADS for `istio.workload.Address` and
 * `istio.security.Authorization`, fed from the Kubernetes API (pods, services, AuthorizationPolicies) and an
 * optional policy file.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { KubeConfig } from '@kubernetes/client-node';
import { LocalFileSource } from '../discovery/local-file-source.js';
import { WorkloadStore } from '../discovery/store.js';
import { errorMessage } from '../errors.js';
import { LocalCa } from '../identity/local-ca.js';
import { logger } from '../runtime/log.js';
import { AGGREGATED_DISCOVERY_SERVICE, CERTIFICATE_SERVICE } from '../xds/services.js';
import { DEFAULT_CA_AUDIENCES, TokenReviewAuthenticator } from './auth/authenticator.js';
import { CertificateService } from './ca/service.js';
import { issueServingCertificate } from './ca/serving-cert.js';
import { controlPlaneError } from './errors.js';
import { KubeCaStore, type ObjectRef } from './kube-ca-store.js';
import { ApiPodLookup, DEFAULT_ROOT_NAMESPACE, KubeSource } from './kube-source.js';
import { DeltaXdsServer } from './xds/delta-server.js';
import { ResourceCache } from './xds/resource-cache.js';

const log = logger('ambit::controlplane');
/** gRPC max message size for xDS, as ztunnel sets it. */
const MAX_MESSAGE_BYTES = 200 * 1024 * 1024;

export interface ControlPlaneOptions {
  /** A kubeconfig path or a loaded KubeConfig. */
  kubeconfig: string | KubeConfig;
  /**
   * Keep the CA root in this Secret (istiod's istio-ca-secret): loaded into `caDir` when it exists,
   * else made in `caDir` and stored, so every control plane pod serves the same root.
   */
  caSecret?: ObjectRef;
  /** Publish the root certificate (`root-cert.pem`) in this ConfigMap (istiod's istio-ca-root-cert). */
  rootCertConfigMap?: ObjectRef;
  /** `host:port`; default 127.0.0.1:15012. Port 0 picks a free one. */
  listen?: string;
  /** LocalCa directory (root key and certificate, created on first use). */
  caDir: string;
  /** YAML with a `policies` list in the local-config shape; reloaded when it changes. */
  policiesFile?: string;
  /** Istio's meshConfig.rootNamespace: its AuthorizationPolicies without a selector are mesh-wide. */
  rootNamespace?: string;
  trustDomain?: string;
  clusterId?: string;
  clusterDomain?: string;
  /** Token audiences accepted from CA and xDS callers (TokenReview `spec.audiences`); default istio-ca. */
  audiences?: string[];
  /** `namespace/serviceAccount` allowed to impersonate pods on its node; default istio-system/ztunnel. */
  nodeProxies?: string[];
  maxTtlSeconds?: number;
  /** Extra IPs for the serving certificate (the address ztunnels dial). */
  servingIps?: string[];
  /** DNS names of the serving certificate; default istiod.istio-system.svc, istiod, localhost. */
  servingDns?: string[];
}

export interface ControlPlane {
  /** `host:port` actually bound. */
  address: string;
  port: number;
  /** The mesh root: clients trust it for this server and for workload certificates. */
  rootPem: string;
  cache: ResourceCache;
  xds: DeltaXdsServer;
  close(): Promise<void>;
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const kubeconfig = typeof o.kubeconfig === 'string' ? loadKubeconfig(o.kubeconfig) : o.kubeconfig;
  const trustDomain = o.trustDomain ?? 'cluster.local';
  const cluster = {
    clusterId: o.clusterId ?? 'Kubernetes',
    clusterDomain: o.clusterDomain ?? 'cluster.local',
    trustDomain,
  };
  const { host, port } = parseAddress(o.listen ?? '127.0.0.1:15012');
  const caOptions = { trustDomain, ...(o.maxTtlSeconds ? { maxTtlSeconds: o.maxTtlSeconds } : {}) };
  const store = o.caSecret || o.rootCertConfigMap ? new KubeCaStore(kubeconfig) : undefined;
  const restored = o.caSecret ? await store!.restoreCaSecret(o.caSecret, o.caDir) : false;
  let ca = await LocalCa.open(o.caDir, caOptions);
  // A root made here is stored; if another control plane stored its own first, that one is used.
  if (o.caSecret && !restored && !(await store!.storeCaSecret(o.caSecret, o.caDir))) {
    ca = await LocalCa.open(o.caDir, caOptions);
  }
  if (o.rootCertConfigMap) await store!.publishRoot(o.rootCertConfigMap, ca.rootPem);
  const serving = await issueServingCertificate(o.caDir, {
    ...(o.servingDns?.length ? { dns: o.servingDns } : {}),
    ips: [host, ...(o.servingIps ?? [])].filter((ip) => isIpLiteral(ip) && ip !== '0.0.0.0' && ip !== '::'),
  });

  const cache = new ResourceCache();
  const source = new KubeSource(kubeconfig, cache, cluster, o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE);
  let policyFile: LocalFileSource | undefined;
  if (o.policiesFile) {
    const policies = new WorkloadStore();
    policyFile = new LocalFileSource(o.policiesFile, policies);
    policyFile.load();
    source.setPolicies(policies.policies);
    policies.on('change', () => source.setPolicies(policies.policies));
    policyFile.watch();
  }
  await source.start();

  // One authenticator for both services: an xDS client proves who it is exactly as a CA caller does.
  const authenticator = new TokenReviewAuthenticator(kubeconfig, o.audiences ?? DEFAULT_CA_AUDIENCES);
  const certificates = new CertificateService({
    ca,
    trustDomain,
    authenticator,
    pods: new ApiPodLookup(kubeconfig),
    ...(o.nodeProxies ? { nodeProxies: o.nodeProxies } : {}),
    ...(o.maxTtlSeconds ? { maxTtlSeconds: o.maxTtlSeconds } : {}),
  });
  const xds = new DeltaXdsServer(cache, authenticator);
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  server.addService(CERTIFICATE_SERVICE, { CreateCertificate: certificates.handler });
  server.addService(AGGREGATED_DISCOVERY_SERVICE, { DeltaAggregatedResources: xds.handler });
  const creds = ServerCredentials.createSsl(null, [
    { cert_chain: Buffer.from(serving.certPem), private_key: Buffer.from(serving.keyPem) },
  ]);
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  let bound: number;
  try {
    bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target, creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
  } catch (err) {
    await source.stop();
    policyFile?.close();
    throw controlPlaneError('ERR_CP_LISTEN', `cannot listen on ${target}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const address = host.includes(':') ? `[${host}]:${bound}` : `${host}:${bound}`;
  log.info('control plane listening', { address, trust_domain: trustDomain, cluster: cluster.clusterId });
  return {
    address,
    port: bound,
    rootPem: ca.rootPem,
    cache,
    xds,
    async close() {
      policyFile?.close();
      await source.stop();
      // Streams are long-lived: end them rather than wait for clients to hang up.
      server.forceShutdown();
    },
  };
}

function loadKubeconfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw controlPlaneError('ERR_KUBECONFIG', `cannot load kubeconfig ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  return kc;
}

export function parseAddress(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535)
    throw controlPlaneError(
      'ERR_CP_LISTEN',
      `"${listen}" is not host:port (e.g. 127.0.0.1:15012 or [::1]:15012)`,
    );
  return { host: (m[1] ?? m[2])!, port };
}

function isIpLiteral(s: string): boolean {
  return /^[\d.]+$/.test(s) || s.includes(':');
}
