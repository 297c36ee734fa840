/** `ambit redirect`: apply, verify, remove or reconcile the in-pod redirection rules of one netns. */
import { parseArgs } from 'node:util';
import { createRedirector, parseBackend, parseInbound } from '../redirect/index.js';
import { type Command, EXIT_FAILURE, EXIT_OK, UsageError } from './command.js';

const HELP = `Usage: ambit redirect apply|verify|remove|reconcile --netns PATH [options]

Programs the in-pod traffic redirection rules inside a pod's network namespace.

  apply       install the rules and the policy route (no-op when already in place)
  verify      compare with the expected rules; exit 1 and print a diff when they differ
  remove      take out every rule of ours; rules that are not ours stay
  reconcile   repair drifted ISTIO_* chains and remove foreign jumps into them

Options:
  --netns PATH          the pod's netns (/var/run/netns/NAME or /proc/PID/ns/net)
  --backend NAME        iptables (default) or nftables
  --inbound MODE        tproxy (default, the seed's rules) or redirect (nat REDIRECT to 15006)
  --dns-capture         also send the pod's DNS (port 53) to ztunnel's 15053 (default off: the seed's rules)
  --pod-ip IP           the pod's address (repeatable); default: the netns' global addresses
  -h, --help            show this help
`;

const ACTIONS = ['apply', 'verify', 'remove', 'reconcile'] as const;
type Action = (typeof ACTIONS)[number];

const command: Command = {
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        netns: { type: 'string' },
        backend: { type: 'string', default: 'iptables' },
        inbound: { type: 'string', default: 'tproxy' },
        'dns-capture': { type: 'boolean', default: false },
        'pod-ip': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    const [action, ...extra] = positionals;
    if (!action || !ACTIONS.includes(action as Action) || extra.length) {
      throw new UsageError(
        `expected one of ${ACTIONS.join(', ')}${action ? `, got '${[action, ...extra].join(' ')}'` : ''}`,
      );
    }
    if (!values.netns) throw new UsageError('--netns PATH is required');
    let backend: ReturnType<typeof parseBackend>;
    let inbound: ReturnType<typeof parseInbound>;
    try {
      backend = parseBackend(values.backend);
      inbound = parseInbound(values.inbound);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const redirector = createRedirector({ backend, inbound, dnsCapture: values['dns-capture'] });
    const podIps = values['pod-ip'];
    switch (action as Action) {
      case 'verify': {
        const r = await redirector.verify(values.netns, podIps);
        if (r.ok) {
          process.stdout.write(
            `ok: ${values.netns} has the expected ${backend} rules (${r.families.join(', ')})\n`,
          );
          return EXIT_OK;
        }
        const lines = [
          `--- expected`,
          `+++ ${values.netns}`,
          ...r.missing.map((l) => `-${l}`),
          ...r.unexpected.map((l) => `+${l}`),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
        return EXIT_FAILURE;
      }
      case 'apply':
        process.stdout.write(`${await redirector.apply(values.netns, podIps)}: ${values.netns}\n`);
        return EXIT_OK;
      case 'reconcile':
        process.stdout.write(`${await redirector.reconcile(values.netns, podIps)}: ${values.netns}\n`);
        return EXIT_OK;
      case 'remove':
        process.stdout.write(`${await redirector.remove(values.netns)}: ${values.netns}\n`);
        return EXIT_OK;
    }
  },
};

export default command;
