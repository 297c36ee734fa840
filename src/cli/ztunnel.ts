/** `ambit ztunnel`: the node proxy process (configuration in src/ztunnel/config.ts). */
import { errorCode, errorMessage } from '../errors.js';
import type { RuntimeErrorCode } from '../runtime/errors.js';
import { runUntilShutdown } from '../runtime/lifecycle.js';
import { nameProcess } from '../runtime/process-name.js';
import { parseZtunnelConfig, type ZtunnelConfig, ztunnelHelp } from '../ztunnel/config.js';
import { appLog, startZtunnel } from '../ztunnel/main.js';
import { type Command, EXIT_OK, EXIT_USAGE } from './command.js';

const command: Command = {
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${ztunnelHelp()}\n`);
      return EXIT_OK;
    }
    let config: ZtunnelConfig;
    try {
      config = parseZtunnelConfig(argv);
    } catch (err) {
      if (errorCode(err) !== ('ERR_CONFIG' satisfies RuntimeErrorCode)) throw err;
      process.stderr.write(`ambit ztunnel: ${errorMessage(err)} [ERR_CONFIG]\n`);
      return EXIT_USAGE;
    }
    nameProcess('ztunnel');
    return runUntilShutdown('ztunnel', (requestShutdown) => startZtunnel(config, requestShutdown), {
      log: appLog,
    });
  },
};

export default command;
