/** `ambit ztunnel`: the node proxy process (configuration in src/ztunnel/config.ts). */
import { runUntilShutdown } from '../runtime/lifecycle.js';
import { nameProcess } from '../runtime/process-name.js';
import { parseZtunnelConfig, type ZtunnelConfig, ztunnelHelp } from '../ztunnel/config.js';
import { appLog, startZtunnel } from '../ztunnel/main.js';
import { type Command, EXIT_OK } from './command.js';

const command: Command = {
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${ztunnelHelp()}\n`);
      return EXIT_OK;
    }
    // A bad flag or variable (ERR_CONFIG) is a usage error: main says so, exit 2.
    const config: ZtunnelConfig = parseZtunnelConfig(argv);
    nameProcess('ztunnel');
    return runUntilShutdown('ztunnel', (requestShutdown) => startZtunnel(config, requestShutdown), {
      log: appLog,
    });
  },
};

export default command;
