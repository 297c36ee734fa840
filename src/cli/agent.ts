/** `ambit agent`: the node agent process (configuration in src/agent/config.ts). */

import { Agent } from '../agent/agent.js';
import { type AgentConfig, agentHelp, parseAgentConfig } from '../agent/config.js';
import { errorCode, errorMessage } from '../errors.js';
import { runUntilShutdown } from '../runtime/lifecycle.js';
import { logger } from '../runtime/log.js';
import { nameProcess } from '../runtime/process-name.js';
import { type Command, EXIT_OK } from './command.js';

const log = logger('ambit::agent');

const command: Command = {
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${agentHelp()}\n`);
      return EXIT_OK;
    }
    // A bad flag or variable (ERR_CONFIG, SELECTOR_INVALID) is a usage error: main says so, exit 2.
    const config: AgentConfig = parseAgentConfig(argv);
    nameProcess('agent');
    return runUntilShutdown('agent', async () => {
      let agent: Agent;
      try {
        agent = await Agent.start(config);
      } catch (err) {
        log.error('node agent failed to start', { error: errorMessage(err), code: errorCode(err) });
        throw err;
      }
      return {
        shutdown: async (signal) => {
          log.info('signal received', { signal });
          await agent.shutdown();
        },
      };
    });
  },
};

export default command;
