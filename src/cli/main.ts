/**
 * `ambit <command> [args]`. Each command lives in its own module, loaded only when used, so the
 * CNI plugin and short commands do not pay for the others' imports.
 */
import { pathToFileURL } from 'node:url';
import { errorCode, errorMessage } from '../errors.js';
import { ambitCommand } from '../runtime/invocation.js';
import { type Command, EXIT_FAILURE, EXIT_USAGE } from './command.js';
import { isUsageError, usageMessage } from './usage.js';

interface Entry {
  summary: string;
  load: () => Promise<Command>;
}

const COMMANDS: Record<string, Entry> = {
  // One line per command; keep the list sorted.
  agent: {
    summary: 'node agent: enrolls pods (CNI events, pod/namespace labels) and hands them to ztunnel over ZDS',
    load: async () => (await import('./agent.js')).default,
  },
  'cni-install': {
    summary: 'install the ambit-cni chained plugin into the CNI config and keep it there',
    load: async () => (await import('./cni-install.js')).default,
  },
  'cni-uninstall': {
    summary: "take ambit out of every node before uninstalling (the chart's pre-delete hook)",
    load: async () => (await import('./cni-uninstall.js')).default,
  },
  'control-plane': {
    summary: 'Istio CA and delta xDS workload discovery server fed from the Kubernetes API',
    load: async () => (await import('./control-plane.js')).default,
  },
  demo: {
    summary: 'run the walkthrough on a local two-node lab',
    load: async () => (await import('./demo.js')).default,
  },
  doctor: {
    summary: "check one pod's traffic redirection: ztunnel state, listeners, rules, annotation, capture",
    load: async () => (await import('./doctor.js')).default,
  },
  lab: {
    summary: 'local cluster of network namespaces: up, down, status, exec, pod',
    load: async () => (await import('./lab.js')).default,
  },
  'lab-apiserver': {
    summary: "the lab's Kubernetes API server stand-in (REST + watch), standalone",
    load: async () => (await import('./apiserver.js')).default,
  },
  redirect: {
    summary: 'in-pod redirection rules: apply, verify, remove, reconcile',
    load: async () => (await import('./redirect.js')).default,
  },
  ztunnel: {
    summary: 'node proxy: per-pod listeners inside pod network namespaces, driven over ZDS',
    load: async () => (await import('./ztunnel.js')).default,
  },
};

function usage(): string {
  const ambit = ambitCommand();
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length), 8);
  const lines = Object.entries(COMMANDS).map(([name, e]) => `  ${name.padEnd(width)}  ${e.summary}`);
  return [
    `Usage: ${ambit} <command> [options]`,
    '',
    "ambit: Istio ambient mode's in-pod traffic redirection (CNI plugin, node agent, node proxy, lab).",
    '',
    'Commands:',
    ...lines,
    '',
    `Run '${ambit} <command> --help' for a command's options.`,
  ].join('\n');
}

/** The line after every usage error, in every command. */
export function usageHint(command: string): string {
  return `Run '${ambitCommand()} ${command} --help' for usage.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : EXIT_USAGE;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write('ambit 0.1.0\n');
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`ambit: unknown command '${name}'\n\n${usage()}\n`);
    return EXIT_USAGE;
  }
  try {
    const command = await entry.load();
    return await command.run(rest);
  } catch (err) {
    const code = errorCode(err);
    if (isUsageError(err)) {
      process.stderr.write(`ambit ${name}: ${usageMessage(err)}\n${usageHint(name)}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`ambit ${name}: ${errorMessage(err)}${code ? ` [${code}]` : ''}\n`);
    return EXIT_FAILURE;
  }
}

// `node dist/src/cli/main.js ...` behaves like `bin/ambit ...`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
