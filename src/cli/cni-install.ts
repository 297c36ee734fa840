/**
 * `ambit cni-install`: puts ambit-cni into the node's CNI config and keeps it there.
 * Without --once/--uninstall it watches and re-applies until SIGINT/SIGTERM. Then, like istio-cni's
 * installer, it reads the node agent's DaemonSet (src/cni/safe-upgrade.ts): still there, it exits
 * leaving the plugin installed, so that new ambient pods stall (fail closed) while the agent is being
 * replaced; gone or being deleted (helm uninstall), it removes the plugin, its kubeconfig and binary.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { CniInstaller } from '../cni/install/installer.js';
import { inClusterTarget, readKubeconfig, SERVICE_ACCOUNT_DIR } from '../cni/kubeconfig.js';
import { DEFAULT_AGENT_NAMESPACE, DEFAULT_EXCLUDE_NAMESPACES } from '../cni/names.js';
import { AGENT_DAEMONSET_NAME, shutdownIntent } from '../cni/safe-upgrade.js';
import { parseEnablementSelectors } from '../cni/selector.js';
import { DEFAULT_AGENT_RUN_DIR } from '../node/contract.js';
import { logger } from '../runtime/log.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';

const HELP = `Usage: ambit cni-install [options]

Installs the ambit-cni chained plugin: copies the plugin into the CNI bin dir(s), writes its
kubeconfig into the agent run dir, and appends it to the highest-priority conflist in the CNI
config dir (a lone .conf is wrapped into a .conflist). Then watches and re-applies on change.

Options:
  --cni-conf-dir DIR        CNI network config dir (default /etc/cni/net.d)
  --cni-bin-dir DIR         CNI plugin dir; repeat for several (default /opt/cni/bin)
  --kubeconfig-from FILE    kubeconfig whose current context the plugin uses
                            (default: in-cluster service account via KUBERNETES_SERVICE_HOST/PORT)
  --run-dir DIR             agent run dir: event socket and plugin kubeconfig (default ${DEFAULT_AGENT_RUN_DIR})
  --plugin-binary FILE      bundled plugin to install (default dist/ambit-cni of this checkout)
  --exclude-namespaces LIST comma-separated namespaces the plugin ignores (default ${DEFAULT_EXCLUDE_NAMESPACES.join(',')})
  --enablement-selectors Y  selectors as YAML/JSON (default: the chart's two ambient selectors)
  --pod-namespace NS        namespace of the node agent's pods (default ${DEFAULT_AGENT_NAMESPACE})
  --plugin-log-level LEVEL  plugin log level: error, warn, info, debug (default info)
  --detection-retry         retry pod lookups ~30 s and fail closed (enable_ambient_detection_retry)
  --disable-safe-upgrade    on SIGTERM always remove the plugin, even when the node agent's
                            DaemonSet (${AGENT_DAEMONSET_NAME}) still exists [env AMBIENT_DISABLE_SAFE_UPGRADE]
  --once                    install once and exit
  --uninstall               remove the plugin from the config, the kubeconfig and the binaries, and exit
  -h, --help                this help
`;

const log = logger('ambit::cni::install');

const LEVELS = new Set(['error', 'warn', 'info', 'debug']);

const command: Command = {
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        'cni-conf-dir': { type: 'string', default: '/etc/cni/net.d' },
        'cni-bin-dir': { type: 'string', multiple: true },
        'kubeconfig-from': { type: 'string' },
        'run-dir': { type: 'string', default: DEFAULT_AGENT_RUN_DIR },
        'plugin-binary': { type: 'string' },
        'exclude-namespaces': { type: 'string' },
        'enablement-selectors': { type: 'string' },
        'pod-namespace': { type: 'string', default: DEFAULT_AGENT_NAMESPACE },
        'plugin-log-level': { type: 'string', default: 'info' },
        'detection-retry': { type: 'boolean', default: false },
        'disable-safe-upgrade': { type: 'boolean', default: false },
        once: { type: 'boolean', default: false },
        uninstall: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (values.once && values.uninstall) throw new UsageError('--once and --uninstall exclude each other');
    if (!LEVELS.has(values['plugin-log-level'])) {
      throw new UsageError(`--plugin-log-level must be one of ${[...LEVELS].join(', ')}`);
    }
    let selectors: unknown;
    if (values['enablement-selectors'] !== undefined) {
      try {
        selectors = parseEnablementSelectors(
          parseYaml(values['enablement-selectors']),
          '--enablement-selectors',
        );
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    const kubeconfigFrom = values['kubeconfig-from'];
    const installer = new CniInstaller({
      confDir: values['cni-conf-dir'],
      binDirs: values['cni-bin-dir']?.length ? values['cni-bin-dir'] : ['/opt/cni/bin'],
      pluginBinary: values['plugin-binary'] ?? fileURLToPath(new URL('../../ambit-cni', import.meta.url)),
      kubeTarget: () => (kubeconfigFrom ? readKubeconfig(kubeconfigFrom) : inClusterTarget()),
      watchFiles: [kubeconfigFrom ?? `${SERVICE_ACCOUNT_DIR}/token`],
      agentRunDir: values['run-dir'],
      excludeNamespaces: (values['exclude-namespaces'] ?? DEFAULT_EXCLUDE_NAMESPACES.join(','))
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      enablementSelectors: selectors,
      podNamespace: values['pod-namespace'],
      pluginLogLevel: values['plugin-log-level'],
      enableAmbientDetectionRetry: values['detection-retry'],
    });
    if (values.uninstall) {
      installer.cleanup();
      return 0;
    }
    if (values.once) {
      installer.installOnce();
      return 0;
    }
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await installer.run(stop.signal);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const kubeConfig = new KubeConfig();
    try {
      if (kubeconfigFrom) kubeConfig.loadFromFile(kubeconfigFrom);
      else if (process.env['KUBERNETES_SERVICE_HOST']) kubeConfig.loadFromCluster();
      else throw new Error('not in a pod (KUBERNETES_SERVICE_HOST unset) and no --kubeconfig-from');
    } catch (err) {
      log.warn('cannot load a kubeconfig to tell upgrade from uninstall; leaving the plugin installed', {
        error: (err as Error).message,
      });
      return 0;
    }
    const intent = await shutdownIntent({
      kubeConfig,
      namespace: values['pod-namespace'],
      disableSafeUpgrade:
        values['disable-safe-upgrade'] ||
        /^(true|1|yes)$/i.test(process.env['AMBIENT_DISABLE_SAFE_UPGRADE'] ?? ''),
    });
    if (intent.kind === 'upgrade') {
      log.info('leaving the plugin installed: new ambient pods wait for the next node agent', {
        reason: intent.reason,
      });
      return 0;
    }
    log.info('uninstalling the plugin from this node', { reason: intent.reason });
    installer.cleanup();
    return 0;
  },
};

export default command;
