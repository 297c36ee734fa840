/**
 * The admin `/config_dump` document (reference ztunnel.md §7): the workload store in the camelCase
 * of the local workload file, certificates as public summaries only, per-pod proxy state and the
 * running configuration. Built fresh per request from the live objects; nothing here holds state.
 */

import { X509Certificate } from 'node:crypto';
import type { WorkloadStore } from '../../discovery/store.js';
import type { Authorization, PortMap, Service, Workload } from '../../discovery/types.js';
import { serialHex } from '../../identity/certificate.js';
import type { CertificateManager } from '../../identity/manager.js';
import { splitPemBundle } from '../../identity/pem.js';
import { formatListenAddress, type ListenAddress } from '../../runtime/listen-address.js';
import type { WorkloadInfo } from '../../zds/messages.js';

export type ProxyState = 'Up' | 'Pending';

export interface WorkloadStateView {
  state: ProxyState;
  info: WorkloadInfo;
  /** Inode of the netns the proxy runs (or waits) in, so tools can tell it is the pod's current one. */
  netnsInode?: number;
}

export interface CertView {
  /** Base64 of the PEM text, as ztunnel prints it. */
  pem: string;
  serialNumber: string;
  validFrom: string;
  expirationTime: string;
}

export interface CertificateView {
  identity: string;
  /** `Initializing`, `Available` or `Unavailable: <reason>`. */
  state: string;
  certChain: CertView[];
  rootCerts: CertView[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ConfigDump {
  workloads: Json[];
  services: Json[];
  policies: Json[];
  certificates: CertificateView[];
  workloadState: Record<string, WorkloadStateView>;
  config: Record<string, Json>;
  version: { name: string; version: string };
}

export interface ConfigDumpSources {
  store: WorkloadStore;
  workloadState: () => Record<string, WorkloadStateView>;
  /** Absent when the proxy has no CA (no HBONE): the list is then empty. */
  certificates?: CertificateManager;
  /** The process configuration; rendered by `configView`. */
  config: object;
}

const portMap = (m: PortMap): Record<string, number> =>
  Object.fromEntries([...m].map(([port, target]) => [String(port), target]));

/** Turns Maps into objects and drops undefined fields, so the dump reads like the local file. */
function workloadView(w: Workload): Json {
  const { services, ...rest } = w;
  return toJson({
    ...rest,
    services: Object.fromEntries([...services].map(([key, ports]) => [key, portMap(ports)])),
  });
}

function serviceView(s: Service): Json {
  return toJson({ ...s, ports: portMap(s.ports) });
}

function policyView(p: Authorization): Json {
  return toJson(p);
}

function toJson(value: unknown): Json {
  return JSON.parse(JSON.stringify(value)) as Json;
}

function certView(pem: string): CertView {
  const cert = new X509Certificate(pem);
  return {
    pem: Buffer.from(pem).toString('base64'),
    serialNumber: serialHex(cert),
    validFrom: new Date(cert.validFrom).toISOString(),
    expirationTime: new Date(cert.validTo).toISOString(),
  };
}

/** Public parts only: the summary the manager hands out never includes the private key. */
export function certificateViews(manager: CertificateManager | undefined): CertificateView[] {
  if (!manager) return [];
  return manager
    .identities()
    .sort()
    .flatMap((identity): CertificateView[] => {
      const s = manager.state(identity);
      if (!s) return [];
      if (s.state === 'Available') {
        const c = s.certificate;
        return [
          {
            identity,
            state: 'Available',
            certChain: c.certChainPem.map(certView),
            rootCerts: splitPemBundle(c.rootPem).map(certView),
          },
        ];
      }
      const state = s.state === 'Unavailable' ? `Unavailable: ${s.reason}` : s.state;
      return [{ identity, state, certChain: [], rootCerts: [] }];
    });
}

const SECRET_KEY = /token|secret|password|privatekey/i;

function isListenAddress(v: unknown): v is ListenAddress {
  return (
    typeof v === 'object' &&
    v !== null &&
    Object.keys(v).length === 2 &&
    typeof (v as ListenAddress).host === 'string' &&
    typeof (v as ListenAddress).port === 'number'
  );
}

/**
 * The configuration in camelCase with `proxyMode: "Shared"` first; listen addresses as `host:port`;
 * fields whose name says they hold a credential are shown only as set or not.
 */
export function configView(config: object): Record<string, Json> {
  const out: Record<string, Json> = { proxyMode: 'Shared' };
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    if (SECRET_KEY.test(key)) out[key] = '<redacted>';
    else if (isListenAddress(value)) out[key] = formatListenAddress(value);
    else out[key] = toJson(value);
  }
  return out;
}

export function buildConfigDump(sources: ConfigDumpSources): ConfigDump {
  const byKey =
    <T>(key: (t: T) => string) =>
    (a: T, b: T) =>
      key(a).localeCompare(key(b));
  return {
    workloads: sources.store.workloads.sort(byKey((w) => w.uid)).map(workloadView),
    services: sources.store.services.sort(byKey((s) => `${s.namespace}/${s.hostname}`)).map(serviceView),
    policies: sources.store.policies.sort(byKey((p) => `${p.namespace}/${p.name}`)).map(policyView),
    certificates: certificateViews(sources.certificates),
    workloadState: sources.workloadState(),
    config: configView(sources.config),
    version: { name: 'ambit', version: '0.1.0' },
  };
}
