/** `ambit lab-apiserver`: runs the lab's Kubernetes API stand-in in the foreground until SIGINT/SIGTERM. */
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { startApiServer } from '../lab/apiserver/index.js';
import { nameProcess } from '../runtime/process-name.js';
import { type Command, EXIT_OK } from './command.js';

const HELP = `Usage: ambit lab-apiserver [options]

Serves the Kubernetes REST + watch API (namespaces, pods, services, endpoints, endpointslices,
nodes, serviceaccounts, configmaps, secrets, events; TokenReview) for the lab, over HTTPS (self-signed CA kept in the state file).

Options:
  --listen HOST:PORT      address to listen on (default 127.0.0.1:6443; port 0 = any free port)
  --state-file PATH       JSON file the cluster state persists in (default: memory only)
  --kubeconfig-out PATH   write a kubeconfig with the admin token here (default: beside the state file)
  -h, --help              show this help
`;

const command: Command = {
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string', default: '127.0.0.1:6443' },
        'state-file': { type: 'string' },
        'kubeconfig-out': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    nameProcess('labApiserver');
    const server = await startApiServer({
      listen: values.listen,
      ...(values['state-file'] ? { stateFile: values['state-file'] } : {}),
      ...(values['kubeconfig-out'] ? { kubeconfigPath: values['kubeconfig-out'] } : {}),
    });
    process.stdout.write(`${server.url}\n`);
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
    await server.close();
    return EXIT_OK;
  },
};

export default command;
