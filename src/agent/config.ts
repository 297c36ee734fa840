/**
 * `ambit agent` configuration: flags, else environment (istio-cni's names where it has one),
 * else defaults as the chart sets them. Every bad value is an ERR_CONFIG error naming its source.
 */
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_AGENT_NAMESPACE, DEFAULT_EXCLUDE_NAMESPACES } from '../cni/names.js';
import { AGENT_DAEMONSET_NAME } from '../cni/safe-upgrade.js';
import {
  DEFAULT_ENABLEMENT_SELECTORS,
  type EnablementSelector,
  parseEnablementSelectors,
} from '../cni/selector.js';
import { errorMessage } from '../errors.js';
import { DEFAULT_AGENT_RUN_DIR, EVENT_SOCKET_NAME, ZDS_SOCKET_PATH } from '../node/contract.js';
import { type BackendName, type InboundMode, parseBackend, parseInbound } from '../redirect/index.js';
import { type ListenAddress, parseListenAddress } from '../runtime/listen-address.js';
import {
  configError,
  type OptionSpec,
  type OptionValue,
  optionError,
  parseBool,
  readOptions,
} from '../runtime/options.js';

/** Which pods belong to the mesh: shared by the informer logic and the CNI event handler. */
export interface AgentSelection {
  selectors: readonly EnablementSelector[];
  excludeNamespaces: readonly string[];
}

export interface AgentConfig extends AgentSelection {
  nodeName: string;
  /** undefined: in-cluster service account, else ~/.kube/config. */
  kubeconfig: string | undefined;
  runDir: string;
  eventSocket: string;
  zdsSocket: string;
  systemNamespace: string;
  backend: BackendName;
  inbound: InboundMode;
  /** Capture each pod's DNS to ztunnel's 15053 (AMBIENT_DNS_CAPTURE; on, as Istio's chart sets it). */
  dnsCapture: boolean;
  /** Where the host probe set and rules live; null = this process's netns. */
  hostNetns: string | null;
  procRoot: string;
  healthAddr: ListenAddress;
  metricsAddr: ListenAddress;
  /** Re-check (and repair) enrolled pods' rules when the agent starts. */
  reconcileOnStartup: boolean;
  /** Namespace of this agent's DaemonSet; undefined outside one (then a shutdown is never an uninstall). */
  podNamespace: string | undefined;
  /** Every shutdown is an uninstall (AMBIENT_DISABLE_SAFE_UPGRADE). */
  disableSafeUpgrade: boolean;
}

const OPTIONS: readonly OptionSpec[] = [
  { flag: 'node-name', env: 'NODE_NAME', help: 'this node; only its pods are watched (required)' },
  {
    flag: 'kubeconfig',
    env: 'KUBECONFIG',
    help: 'kubeconfig file (default: in-cluster, else ~/.kube/config)',
  },
  {
    flag: 'run-dir',
    env: 'CNI_AGENT_RUN_DIR',
    default: DEFAULT_AGENT_RUN_DIR,
    help: `plugin event socket dir (${EVENT_SOCKET_NAME})`,
  },
  {
    flag: 'zds-socket',
    env: 'ZTUNNEL_UDS_ADDRESS',
    default: ZDS_SOCKET_PATH,
    help: 'ZDS socket ztunnel connects to',
  },
  {
    flag: 'exclude-namespaces',
    env: 'EXCLUDE_NAMESPACES',
    default: DEFAULT_EXCLUDE_NAMESPACES.join(','),
    help: 'comma list of namespaces never enrolled',
  },
  {
    flag: 'enablement-selectors',
    env: 'AMBIENT_ENABLEMENT_SELECTOR',
    help: "selectors as YAML/JSON (default: the chart's two ambient selectors)",
  },
  {
    flag: 'system-namespace',
    env: 'SYSTEM_NAMESPACE',
    default: DEFAULT_AGENT_NAMESPACE,
    help: 'namespace of the ztunnel pods (never captured)',
  },
  {
    flag: 'redirect-backend',
    env: 'REDIRECT_BACKEND',
    default: 'iptables',
    help: 'in-pod rules: iptables or nftables',
  },
  {
    flag: 'redirect-inbound',
    env: 'REDIRECT_INBOUND',
    default: 'tproxy',
    help: 'inbound capture: tproxy (the seed) or redirect',
  },
  {
    flag: 'dns-capture',
    env: 'AMBIENT_DNS_CAPTURE',
    default: 'true',
    help: "send each pod's DNS (port 53) to ztunnel's DNS proxy on 15053 (true/false; false keeps the seed's rules exactly)",
  },
  {
    flag: 'host-netns',
    env: 'HOST_NETNS',
    help: 'netns path for the host probe set and rules (default: our own)',
  },
  {
    flag: 'proc-root',
    env: 'HOST_PROC',
    default: '/proc',
    help: "proc filesystem scanned for running pods' netns",
  },
  { flag: 'health-addr', env: 'HEALTH_ADDR', default: '[::]:8000', help: '/healthz and /readyz' },
  { flag: 'metrics-addr', env: 'METRICS_ADDR', default: '[::]:15014', help: 'Prometheus /metrics' },
  {
    flag: 'reconcile-on-startup',
    env: 'AMBIENT_RECONCILE_POD_RULES_ON_STARTUP',
    default: 'true',
    help: "repair enrolled pods' rules at start-up (true/false)",
  },
  {
    flag: 'pod-namespace',
    env: 'POD_NAMESPACE',
    help: `namespace of this agent's DaemonSet (${AGENT_DAEMONSET_NAME}); on SIGTERM, when it is gone or being deleted, the node is uninstalled`,
  },
  {
    flag: 'disable-safe-upgrade',
    env: 'AMBIENT_DISABLE_SAFE_UPGRADE',
    default: 'false',
    help: 'uninstall the node on every shutdown, DaemonSet or not (true/false)',
  },
];

export function agentHelp(): string {
  const lines = OPTIONS.map((o) => {
    const left = `  --${o.flag}`.padEnd(26);
    const env = o.env ? ` [env ${o.env}]` : '';
    const def = o.default !== undefined ? ` (default ${o.default})` : '';
    return `${left}${o.help}${def}${env}`;
  });
  return [
    'Usage: ambit agent [options]',
    '',
    "The node agent: receives new pods from the ambit-cni plugin, watches this node's pods and all",
    "namespaces, installs the in-pod redirection rules and hands each pod's netns to ztunnel over ZDS.",
    '',
    'Options:',
    ...lines,
    '  -h, --help                this help',
  ].join('\n');
}

const fail = (why: string): never => {
  throw configError(why);
};
const bad = (value: OptionValue, why: string): never => {
  throw optionError(value, why);
};

export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let option: (flag: string) => OptionValue | undefined;
  try {
    option = readOptions(OPTIONS, argv, env);
  } catch (err) {
    return fail(errorMessage(err));
  }
  // The options read with `must` all have a default.
  const must = (flag: string): OptionValue => option(flag)!;
  const text = (flag: string) => option(flag)?.text;

  const nodeName = text('node-name') ?? fail('the node name is required: pass --node-name or set NODE_NAME');
  let selectors: readonly EnablementSelector[] = DEFAULT_ENABLEMENT_SELECTORS;
  const sel = option('enablement-selectors');
  if (sel !== undefined) {
    let decoded: unknown;
    try {
      decoded = parseYaml(sel.text);
    } catch (err) {
      fail(`${sel.source}: not YAML/JSON: ${errorMessage(err)}`);
    }
    selectors = parseEnablementSelectors(decoded, sel.source);
  }
  const addr = (flag: string) => {
    const v = must(flag);
    try {
      return parseListenAddress(v.text, v.source);
    } catch (err) {
      return fail(errorMessage(err));
    }
  };
  const withSource = <T>(flag: string, parse: (t: string) => T): T => {
    const v = must(flag);
    try {
      return parse(v.text);
    } catch (err) {
      return fail(`${v.source}: ${errorMessage(err)}`);
    }
  };
  const runDir = text('run-dir')!;
  const reconcile = must('reconcile-on-startup');
  const safeUpgrade = must('disable-safe-upgrade');
  const dnsCapture = must('dns-capture');
  return {
    nodeName,
    kubeconfig: text('kubeconfig'),
    runDir,
    eventSocket: join(runDir, EVENT_SOCKET_NAME),
    zdsSocket: text('zds-socket')!,
    selectors,
    excludeNamespaces: (text('exclude-namespaces') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
    systemNamespace: text('system-namespace')!,
    backend: withSource('redirect-backend', parseBackend),
    inbound: withSource('redirect-inbound', parseInbound),
    dnsCapture: parseBool(dnsCapture.text) ?? bad(dnsCapture, 'expected true or false'),
    hostNetns: text('host-netns') ?? null,
    procRoot: text('proc-root')!,
    healthAddr: addr('health-addr'),
    metricsAddr: addr('metrics-addr'),
    reconcileOnStartup: parseBool(reconcile.text) ?? bad(reconcile, 'expected true or false'),
    podNamespace: text('pod-namespace'),
    disableSafeUpgrade: parseBool(safeUpgrade.text) ?? bad(safeUpgrade, 'expected true or false'),
  };
}
