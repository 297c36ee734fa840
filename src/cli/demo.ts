/**
 * `ambit demo`: the seed's walkthrough on a local lab. So far: a two-node lab with the seed's
 * `ambient-demo/sleep` and `ambient-demo/httpbin` pods, its topology, and proof that pod-to-pod
 * TCP crosses the nodes. Later parts enrol the namespace in the mesh and show the redirection.
 */
import type { Server, Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { AmbitError } from '../errors.js';
import { DEFAULT_CNI_PATH } from '../lab/cni-runtime/index.js';
import {
  checkPrerequisites,
  createPod,
  type LabPod,
  labDown,
  labExists,
  labUp,
  listNetns,
  loadLab,
  renderTopology,
} from '../lab/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../sys/index.js';
import { type Command, EXIT_OK } from './command.js';

const LAB = 'demo';
const HTTPBIN_PORT = 8000;
const EXCHANGE_TIMEOUT_MS = 10_000;

const HELP = `Usage: ambit demo [--keep]

Brings up a two-node lab named '${LAB}' (removing a leftover one first), creates the pods
ambient-demo/sleep on n1 and ambient-demo/httpbin on n2 through the reference CNI plugins, prints
the topology, proves pod-to-pod TCP across the nodes, and removes the lab again. Needs root.

Options:
  --keep   leave the lab running afterwards (remove it with 'ambit lab down --name ${LAB}')
`;

function heading(title: string): void {
  process.stdout.write(`\n== ${title} ==\n`);
}

/** Echoes one message from sleep to httpbin and back, and reports who httpbin saw as the client. */
async function proveTcp(sleep: LabPod, httpbin: LabPod): Promise<void> {
  const sleepNs = NetnsHandle.open(sleep.netnsPath);
  const httpbinNs = NetnsHandle.open(httpbin.netnsPath);
  let server: Server | undefined;
  let client: Socket | undefined;
  const peers: string[] = [];
  try {
    server = await listenInNetns(httpbinNs, { host: '0.0.0.0', port: HTTPBIN_PORT });
    server.on('connection', (conn) => {
      peers.push(conn.remoteAddress ?? '?');
      conn.on('error', () => {});
      conn.pipe(conn);
    });
    const message = Buffer.from(`hello from ${sleep.namespace}/${sleep.name} at ${sleep.ip}\n`);
    client = await connected(connectInNetns(sleepNs, { host: httpbin.ip, port: HTTPBIN_PORT }));
    const echoed = await exchange(client, message);
    if (!echoed.equals(message)) {
      throw new AmbitError(
        'DEMO_TCP_FAILED',
        `httpbin echoed ${JSON.stringify(echoed.toString())}, expected the message sent`,
      );
    }
    process.stdout.write(
      `sleep ${sleep.ip} (${sleep.node}) -> httpbin ${httpbin.ip}:${HTTPBIN_PORT} (${httpbin.node}): ` +
        `${message.length} bytes sent and echoed back; httpbin saw the client as ${peers[0]}\n`,
    );
  } finally {
    client?.destroy();
    server?.close();
    sleepNs.close();
    httpbinNs.close();
  }
}

function exchange(socket: Socket, message: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(
      () =>
        reject(new AmbitError('DEMO_TCP_FAILED', `no echo from httpbin within ${EXCHANGE_TIMEOUT_MS} ms`)),
      EXCHANGE_TIMEOUT_MS,
    );
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= message.length) {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks));
      }
    });
    socket.write(message);
  });
}

const demo: Command = {
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { keep: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    checkPrerequisites([DEFAULT_CNI_PATH]);
    if (labExists(LAB)) {
      heading('Removing the demo lab left by an earlier run');
      await labDown(LAB);
    }
    try {
      heading('Bringing up a two-node lab');
      await labUp({ name: LAB, nodes: 2 });
      const sleep = await createPod(LAB, 'n1', { namespace: 'ambient-demo', name: 'sleep' });
      const httpbin = await createPod(LAB, 'n2', { namespace: 'ambient-demo', name: 'httpbin' });

      heading('Topology');
      process.stdout.write(`${renderTopology(loadLab(LAB), new Set(listNetns()))}\n`);

      heading('Pod-to-pod TCP across nodes');
      await proveTcp(sleep, httpbin);

      if (values.keep) {
        heading('The lab keeps running');
        process.stdout.write(
          `Look inside a pod:  ambit lab exec --name ${LAB} ambient-demo/sleep -- ss -ntlp\n` +
            `Remove the lab:     ambit lab down --name ${LAB}\n`,
        );
      }
    } finally {
      if (!values.keep) {
        heading('Removing the lab');
        await labDown(LAB);
      }
    }
    process.stdout.write('\nDemo finished.\n');
    return EXIT_OK;
  },
};

export default demo;
