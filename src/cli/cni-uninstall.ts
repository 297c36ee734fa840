/** `ambit cni-uninstall`: Helm's pre-delete hook; takes ambit out of every node (src/cni/install/uninstall-nodes.ts). */
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { AGENT_POD_SELECTOR, uninstallNodes } from '../cni/install/uninstall-nodes.js';
import { DEFAULT_AGENT_NAMESPACE } from '../cni/names.js';
import { AGENT_DAEMONSET_NAME } from '../cni/safe-upgrade.js';
import { errorCode, errorMessage } from '../errors.js';
import { type Command, EXIT_FAILURE, EXIT_OK, UsageError } from './command.js';

const HELP = `Usage: ambit cni-uninstall [options]

Takes ambit out of every node before its objects are deleted (the chart's pre-delete hook): deletes
the node agent DaemonSet with foreground propagation and waits until its pods are gone. Each agent,
seeing its DaemonSet deleted, removes its pods' in-pod rules, ztunnel workloads, probe entries and
ambient.istio.io/redirection annotations, and its installer removes the plugin from the CNI config.

Options:
  --namespace NS      namespace of the DaemonSet (default: POD_NAMESPACE, else ${DEFAULT_AGENT_NAMESPACE})
  --daemonset NAME    the node agent DaemonSet (default ${AGENT_DAEMONSET_NAME})
  --selector LABELS   label selector of its pods (default ${AGENT_POD_SELECTOR})
  --timeout SECONDS   how long the agents may take (default 120)
  --kubeconfig FILE   default: in-cluster service account, else ~/.kube/config
  -h, --help          this help
`;

const command: Command = {
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        namespace: { type: 'string' },
        daemonset: { type: 'string', default: AGENT_DAEMONSET_NAME },
        selector: { type: 'string', default: AGENT_POD_SELECTOR },
        timeout: { type: 'string', default: '120' },
        kubeconfig: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    const seconds = Number(values.timeout);
    if (!Number.isFinite(seconds) || seconds <= 0)
      throw new UsageError('--timeout must be a positive number of seconds');
    const kubeConfig = new KubeConfig();
    if (values.kubeconfig) kubeConfig.loadFromFile(values.kubeconfig);
    else kubeConfig.loadFromDefault();
    try {
      await uninstallNodes({
        kubeConfig,
        namespace: values.namespace ?? process.env['POD_NAMESPACE'] ?? DEFAULT_AGENT_NAMESPACE,
        daemonSet: values.daemonset,
        podSelector: values.selector,
        timeoutMs: seconds * 1000,
      });
    } catch (err) {
      const code = errorCode(err);
      process.stderr.write(`ambit cni-uninstall: ${errorMessage(err)}${code ? ` [${code}]` : ''}\n`);
      return EXIT_FAILURE;
    }
    return EXIT_OK;
  },
};

export default command;
