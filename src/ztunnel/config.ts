/**
 * `ambit ztunnel` configuration: ztunnel's environment variable names (reference ztunnel.md §8),
 * each with a command-line flag of the same name in kebab case; a flag wins over its variable.
 * Errors name the flag or variable the bad value came from.
 */
import { PROXY_MARK, ZDS_SOCKET_PATH } from '../node/contract.js';
import { formatListenAddress, type ListenAddress, parseListenAddress } from '../runtime/listen-address.js';
import { LEVELS, type Level, parseLevel } from '../runtime/log.js';
import {
  type OptionSpec,
  type OptionValue,
  optionError,
  parseBool,
  parseDurationMs,
  parseMark,
  readOptions,
} from '../runtime/options.js';

export interface LogDirective {
  /** Undefined for the default level. */
  target?: string;
  level: Level;
}

export interface ZtunnelConfig {
  inpodUds: string;
  inpodPortReuse: boolean;
  packetMark: number;
  /** Workloads, services and policies from a YAML file, reloaded on change; none = empty store. */
  localXdsPath: string | undefined;
  /** Only workloads on this node are matched to ZDS pods. */
  nodeName: string | undefined;
  socks5: boolean;
  /** ztunnel's DNS proxy on 15053 in each pod (DNS_CAPTURE, on by default as in Istio). */
  dnsCapture: boolean;
  /** The cluster's DNS domain: service hostnames end in svc.<it>. */
  clusterDomain: string;
  /** Where the upstream resolvers of the DNS proxy are read (the node's resolv.conf, as ztunnel's). */
  dnsResolvConf: string;
  /** IPV6_ENABLED: the wildcard listeners bind `::` (dual-stack), else `0.0.0.0`. */
  ipv6Enabled: boolean;
  /** How long SIGTERM lets connections finish before cutting them. */
  drainDeadlineMs: number;
  log: LogDirective[];
  workers: number;
  adminAddr: ListenAddress;
  metricsAddr: ListenAddress;
  readinessAddr: ListenAddress;
  /** HBONE certificates from this file-backed local CA (the lab's); unset = no HBONE unless caAddress. */
  localCaDir: string | undefined;
  /** Istio's CA (CreateCertificate) and workload discovery (delta ADS); unset = not used. */
  caAddress: string | undefined;
  caRootCa: string | undefined;
  xdsAddress: string | undefined;
  xdsRootCa: string | undefined;
  /** Bearer token for the CA and xDS: a file path (re-read per call) or the token itself. */
  authToken: string | undefined;
  clusterId: string;
  /** Node identity for xDS: ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local */
  podName: string;
  podNamespace: string;
  instanceIp: string;
  trustDomain: string;
  /** Requested workload certificate lifetime (SECRET_TTL). */
  secretTtlSeconds: number;
  /** Deadline for an inbound HBONE client's TLS handshake, from accept. */
  hboneHandshakeTimeoutMs: number;
  /** HTTP/2 PING keepalive of HBONE connections (ztunnel hard-codes 10 s / 20 s). */
  hboneKeepalive: { intervalMs: number; timeoutMs: number };
}

export const OPTIONS: readonly OptionSpec[] = [
  {
    flag: 'proxy-mode',
    env: 'PROXY_MODE',
    default: 'shared',
    help: 'shared = in-pod mode, one proxy per node (the only mode ambit implements)',
  },
  {
    flag: 'inpod-uds',
    env: 'INPOD_UDS',
    default: ZDS_SOCKET_PATH,
    help: "the node agent's ZDS socket",
  },
  {
    flag: 'inpod-port-reuse',
    env: 'INPOD_PORT_REUSE',
    default: 'true',
    help: 'SO_REUSEPORT on pod listeners (and tcp_migrate_req in the pod), so a new ztunnel can take over',
  },
  {
    flag: 'packet-mark',
    env: 'PACKET_MARK',
    default: String(PROXY_MARK),
    help: 'SO_MARK on every socket the proxy makes (decimal or 0x hex)',
  },
  {
    flag: 'local-xds-path',
    env: 'LOCAL_XDS_PATH',
    help: 'YAML file of workloads, services and policies, reloaded on change (unset: empty store, all passthrough)',
  },
  { flag: 'node-name', env: 'NODE_NAME', help: 'this node: only its workloads are matched to ZDS pods' },
  {
    flag: 'local-ca-dir',
    env: 'AMBIT_LOCAL_CA_DIR',
    help: "issue HBONE workload certificates from the file-backed local CA in this directory (the lab's); unset: no HBONE",
  },
  {
    flag: 'trust-domain',
    env: 'TRUST_DOMAIN',
    default: 'cluster.local',
    help: 'trust domain of pods the workload store does not describe',
  },
  { flag: 'secret-ttl', env: 'SECRET_TTL', default: '24h', help: 'requested workload certificate lifetime' },
  {
    flag: 'hbone-handshake-timeout',
    env: 'AMBIT_HBONE_HANDSHAKE_TIMEOUT',
    default: '10s',
    help: "how long a client of a pod's :15008 may take to finish its TLS handshake before it is cut (Istio's ztunnel: 10s)",
  },
  {
    flag: 'ca-address',
    env: 'CA_ADDRESS',
    help: "Istio CA ([https://]host:port, e.g. istiod's :15012); unset: none",
  },
  {
    flag: 'ca-root-ca',
    env: 'CA_ROOT_CA',
    help: 'roots to verify the CA: a PEM file, inline PEM or SYSTEM (default: the xDS roots, else SYSTEM)',
  },
  {
    flag: 'xds-address',
    env: 'XDS_ADDRESS',
    help: 'workload discovery (delta ADS, [https://]host:port); exclusive with --local-xds-path',
  },
  { flag: 'xds-root-ca', env: 'XDS_ROOT_CA', help: 'roots to verify xDS: a PEM file, inline PEM or SYSTEM' },
  {
    flag: 'auth-token',
    env: 'AUTH_TOKEN',
    default: './var/run/secrets/tokens/istio-token',
    help: 'bearer token for the CA and xDS: a file path (re-read per call) or the token itself',
  },
  {
    flag: 'cluster-id',
    env: 'CLUSTER_ID',
    default: 'Kubernetes',
    help: 'cluster id sent to the control plane',
  },
  { flag: 'pod-name', env: 'POD_NAME', default: 'ztunnel', help: "this ztunnel's pod name (xDS node id)" },
  {
    flag: 'pod-namespace',
    env: 'POD_NAMESPACE',
    default: 'istio-system',
    help: "this ztunnel's namespace (xDS node id)",
  },
  { flag: 'instance-ip', env: 'INSTANCE_IP', default: '1.1.1.1', help: "this ztunnel's IP (xDS node id)" },
  {
    flag: 'unstable-enable-socks5',
    env: 'UNSTABLE_ENABLE_SOCKS5',
    default: 'true',
    help: 'the SOCKS5 listener on 127.0.0.1:15080 in each pod',
  },
  {
    flag: 'dns-capture',
    env: 'DNS_CAPTURE',
    default: 'true',
    help: "the DNS proxy on 127.0.0.1:15053 (and [::1]:15053) in each pod, where the agent's DNS capture sends port 53: service hostnames answered from the workload store, the rest forwarded upstream",
  },
  {
    flag: 'cluster-domain',
    env: 'CLUSTER_DOMAIN',
    default: 'cluster.local',
    help: 'the cluster DNS domain (service hostnames are <name>.<namespace>.svc.<domain>)',
  },
  {
    flag: 'dns-resolv-conf',
    env: 'AMBIT_DNS_RESOLV_CONF',
    default: '/etc/resolv.conf',
    help: "the DNS proxy's upstream resolvers: the nameserver lines of this file (Istio's ztunnel reads its own /etc/resolv.conf)",
  },
  {
    flag: 'ipv6-enabled',
    env: 'IPV6_ENABLED',
    default: 'true',
    help: "listeners on [::], dual-stack (Istio's ztunnel default); false: on 0.0.0.0, IPv4 only",
  },
  {
    flag: 'connection-termination-deadline',
    env: 'CONNECTION_TERMINATION_DEADLINE',
    default: '5s',
    help: 'how long SIGTERM lets connections drain before cutting them (e.g. 500ms, 5s, 1m)',
  },
  {
    flag: 'termination-grace-period-seconds',
    env: 'TERMINATION_GRACE_PERIOD_SECONDS',
    help: "the pod's grace period; without an explicit deadline, drain for it minus 5 s (minus 1 s if ≤10)",
  },
  {
    flag: 'hbone-keepalive-interval',
    env: 'AMBIT_HBONE_KEEPALIVE_INTERVAL',
    default: '10s',
    help: 'how often an HBONE connection is PINGed (ztunnel: 10s, not configurable there)',
  },
  {
    flag: 'hbone-keepalive-timeout',
    env: 'AMBIT_HBONE_KEEPALIVE_TIMEOUT',
    default: '20s',
    help: 'an HBONE connection whose PING goes unanswered this long is given up and its streams reset (ztunnel: 20s)',
  },
  {
    flag: 'log-level',
    env: 'RUST_LOG',
    default: 'info',
    help: `level, or level plus target=level pairs: info,ztunnel::proxy=debug (${LEVELS.join(', ')})`,
  },
  {
    flag: 'workers',
    env: 'ZTUNNEL_WORKER_THREADS',
    default: '1',
    help: 'proxy worker threads (only 1 is implemented so far)',
  },
  {
    flag: 'admin-addr',
    default: 'localhost:15000',
    help: 'admin server (POST /quitquitquit)',
  },
  { flag: 'metrics-addr', default: '[::]:15020', help: 'Prometheus metrics: /metrics, /stats/prometheus' },
  { flag: 'readiness-addr', default: '[::]:15021', help: 'readiness: /healthz/ready' },
];

type Raw = OptionValue;

/** As Istio's ztunnel picks its wildcard: `[::]` with IPv6 enabled, else `0.0.0.0`. */
function wildcardFamily(a: ListenAddress, ipv6Enabled: boolean): ListenAddress {
  return !ipv6Enabled && a.host === '::' ? { ...a, host: '0.0.0.0' } : a;
}

function bad(raw: Raw, why: string): never {
  throw optionError(raw, why);
}

function bool(raw: Raw): boolean {
  return parseBool(raw.text.trim()) ?? bad(raw, 'expected true or false');
}

function domain(raw: Raw): string {
  const text = raw.text.trim().toLowerCase().replace(/\.$/, '');
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(text))
    bad(raw, 'expected a DNS domain such as cluster.local');
  return text;
}

function mark(raw: Raw): number {
  return parseMark(raw.text) ?? bad(raw, 'expected a mark from 1 to 4294967295 (decimal or 0x hex)');
}

/** Durations as ztunnel writes them: `500ms`, `5s`, `1.5m`, `1h`. */
export function parseDuration(text: string, source: string): number {
  return (
    parseDurationMs(text) ??
    bad({ text, source, explicit: true }, 'expected a duration such as 500ms, 5s or 1m')
  );
}

function positiveDuration(raw: Raw): number {
  const ms = parseDuration(raw.text, raw.source);
  if (ms <= 0) bad(raw, 'expected a duration above zero');
  return ms;
}

/** RUST_LOG style: `info`, `warn,ztunnel::proxy=debug`. */
export function parseLogDirectives(raw: Raw): LogDirective[] {
  const out: LogDirective[] = [];
  for (const part of raw.text.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const target = eq >= 0 ? part.slice(0, eq).trim() : undefined;
    const level = parseLevel(eq >= 0 ? part.slice(eq + 1) : part);
    if (!level || target === '')
      return bad(raw, `'${part}' is not <level> or <target>=<level> (levels: ${LEVELS.join(', ')})`);
    out.push(target === undefined ? { level } : { target, level });
  }
  if (out.length === 0) return bad(raw, 'empty');
  return out;
}

/** The drain deadline upstream derives: explicit deadline, else grace period − 5 s (− 1 s if ≤10 s), min 1 s. */
function drainDeadline(deadline: Raw, grace: Raw | undefined): number {
  if (deadline.explicit || !grace) return parseDuration(deadline.text, deadline.source);
  if (!/^\d+$/.test(grace.text.trim())) return bad(grace, 'expected a whole number of seconds');
  const seconds = Number(grace.text);
  return Math.max(1, seconds > 10 ? seconds - 5 : seconds - 1) * 1000;
}

/** Parses the command line (flags win) over the environment; throws AmbitError ERR_CONFIG or a parseArgs error. */
export function parseZtunnelConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ZtunnelConfig {
  const raw = readOptions(OPTIONS, argv, env);
  const must = (flag: string) => raw(flag)!;

  const mode = must('proxy-mode');
  if (mode.text.trim() !== 'shared') {
    bad(mode, 'ambit ztunnel implements only the in-pod (shared) proxy mode');
  }
  const workers = must('workers');
  if (!/^\d+$/.test(workers.text.trim()) || Number(workers.text) < 1)
    bad(workers, 'expected a whole number ≥ 1');
  // Each pod's listeners use SO_REUSEPORT, so a worker per core could bind its own set; not built yet.
  if (Number(workers.text) !== 1) bad(workers, 'only 1 worker is implemented so far');
  const exclusive = (a: string, b: string) => {
    const ra = raw(a);
    if (ra?.explicit && raw(b)?.explicit)
      bad(ra, `${ra.source} and ${raw(b)!.source} exclude each other: use one`);
  };
  exclusive('local-xds-path', 'xds-address');
  exclusive('local-ca-dir', 'ca-address');
  const ipv6Enabled = bool(must('ipv6-enabled'));
  const uds = must('inpod-uds');
  if (uds.text.trim() === '') bad(uds, 'expected a socket path');

  return {
    inpodUds: uds.text.trim(),
    inpodPortReuse: bool(must('inpod-port-reuse')),
    packetMark: mark(must('packet-mark')),
    localXdsPath: raw('local-xds-path')?.text.trim(),
    nodeName: raw('node-name')?.text.trim(),
    socks5: bool(must('unstable-enable-socks5')),
    dnsCapture: bool(must('dns-capture')),
    clusterDomain: domain(must('cluster-domain')),
    dnsResolvConf: must('dns-resolv-conf').text.trim(),
    ipv6Enabled,
    drainDeadlineMs: drainDeadline(
      must('connection-termination-deadline'),
      raw('termination-grace-period-seconds'),
    ),
    log: parseLogDirectives(must('log-level')),
    workers: 1,
    adminAddr: parseListenAddress(must('admin-addr').text, '--admin-addr'),
    metricsAddr: wildcardFamily(parseListenAddress(must('metrics-addr').text, '--metrics-addr'), ipv6Enabled),
    readinessAddr: wildcardFamily(
      parseListenAddress(must('readiness-addr').text, '--readiness-addr'),
      ipv6Enabled,
    ),
    localCaDir: raw('local-ca-dir')?.text.trim(),
    trustDomain: must('trust-domain').text.trim(),
    hboneKeepalive: {
      intervalMs: positiveDuration(must('hbone-keepalive-interval')),
      timeoutMs: positiveDuration(must('hbone-keepalive-timeout')),
    },
    secretTtlSeconds: Math.ceil(parseDuration(must('secret-ttl').text, must('secret-ttl').source) / 1000),
    hboneHandshakeTimeoutMs: positiveDuration(must('hbone-handshake-timeout')),
    caAddress: raw('ca-address')?.text.trim(),
    caRootCa: raw('ca-root-ca')?.text.trim(),
    xdsAddress: raw('xds-address')?.text.trim(),
    xdsRootCa: raw('xds-root-ca')?.text.trim(),
    authToken: raw('auth-token')?.text.trim(),
    clusterId: must('cluster-id').text.trim(),
    podName: must('pod-name').text.trim(),
    podNamespace: must('pod-namespace').text.trim(),
    instanceIp: must('instance-ip').text.trim(),
  };
}

/** `ambit ztunnel --help`: every flag with its variable and default. */
export function ztunnelHelp(): string {
  const rows = OPTIONS.map((o) => {
    const left = `  --${o.flag} <value>`;
    const env = o.env ? `env ${o.env}` : 'no env variable';
    const def = o.default !== undefined ? `default ${o.default}` : 'unset by default';
    return `${left}\n      ${o.help}\n      [${env}; ${def}]`;
  });
  return [
    'Usage: ambit ztunnel [options]',
    '',
    "The node proxy (ztunnel role): connects to the node agent over ZDS and runs each enrolled pod's",
    'listeners (15001, 15006, 15008, 127.0.0.1:15080, DNS on 127.0.0.1:15053) inside the pod network namespace. Needs',
    'CAP_SYS_ADMIN and CAP_NET_ADMIN. SIGTERM/SIGINT (or POST /quitquitquit on the admin address)',
    'drain gracefully; a second SIGINT exits at once. A flag wins over its environment variable.',
    '',
    'Options:',
    ...rows,
    '  -h, --help',
    '      show this help',
  ].join('\n');
}

export { formatListenAddress };
