/** `ambit ztunnel`: the node proxy process (configuration in src/ztunnel/config.ts). */
import { errorCode, errorMessage } from '../errors.js';
import { parseZtunnelConfig, type ZtunnelConfig, ztunnelHelp } from '../ztunnel/config.js';
import { runZtunnel } from '../ztunnel/main.js';
import { type Command, EXIT_OK, EXIT_USAGE, exitOnStartupFailure } from './command.js';

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
      if (errorCode(err) !== 'ERR_CONFIG') throw err;
      process.stderr.write(`ambit ztunnel: ${errorMessage(err)} [ERR_CONFIG]\n`);
      return EXIT_USAGE;
    }
    try {
      // Rejects only when start-up fails; a drain's errors are logged and end in an exit code.
      return await runZtunnel(config);
    } catch (err) {
      return exitOnStartupFailure('ztunnel', err);
    }
  },
};

export default command;
