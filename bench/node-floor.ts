/**
 * The benchmark's "node floor": the least any Node.js node proxy has to do, run as one process per node
 * inside the node's netns (`ip netns exec <node> node node-floor.js CONFIG_JSON`). Each front port takes
 * a client connection in plain TCP and carries it to a back port (this node's or the other node's),
 * which connects the target pod and relays. Between front and back: TLS 1.3 with AES-256-GCM (the
 * suite two ztunnels agree on) for the byte figures, or plain TCP for the new-connection figures (a mesh
 * pools its tunnels, so no handshake is on a new connection's path; accepting, connecting and relaying
 * are). Nothing else: no HTTP/2, identities, policy, metrics, logs or redirection rules. Whatever a
 * Node ztunnel spends above these figures is its own; what these figures spend is Node's.
 *
 * The front tells the back where to go with one header: a length byte, then "host:port" in ASCII.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer as netServer, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsServer } from 'node:tls';

export interface FloorConfig {
  /** Client-facing ports: each relays to `via` (a back port, over TLS or not) and from there to `target`. */
  fronts: {
    port: number;
    via: { host: string; port: number; tls: boolean };
    target: { host: string; port: number };
  }[];
  /** This node's back ports. */
  backTlsPort: number;
  backPlainPort: number;
  /** PEM files: the back's certificate chain and key, and the root the fronts verify it with. */
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** Stream buffers as large as the echo server's: the floor is the best plain Node can do. */
const HWM = 1024 * 1024;
const TLS_OPTIONS = { minVersion: 'TLSv1.3', ciphers: 'TLS_AES_256_GCM_SHA384' } as const;

/**
 * Both ways, ends passed on (half-close), either side's error closes both. A side's plain close is not
 * passed on as a destroy: the other side may still be writing what the closed one sent last (a sink's
 * count after the client's end), and the pipes' ends close it once that is out.
 */
function relay(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}

function header(target: { host: string; port: number }): Buffer {
  const text = Buffer.from(`${target.host}:${target.port}`, 'ascii');
  return Buffer.concat([Buffer.from([text.length]), text]);
}

/** Reads the header, then connects its target and relays. */
function serveBack(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  let got = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    got = Buffer.concat([got, chunk]);
    if (got.length < 1 || got.length < 1 + got[0]!) return;
    socket.off('data', onData);
    socket.pause();
    const end = 1 + got[0]!;
    const text = got.subarray(1, end).toString('ascii');
    const colon = text.lastIndexOf(':');
    const upstream = netConnect({
      host: text.slice(0, colon),
      port: Number(text.slice(colon + 1)),
      noDelay: true,
      allowHalfOpen: true,
      highWaterMark: HWM,
    } as never);
    if (got.length > end) upstream.write(got.subarray(end));
    relay(socket, upstream);
  };
  socket.on('data', onData);
}

function main(): void {
  const config = JSON.parse(process.argv[2] ?? '') as FloorConfig;
  const cert = readFileSync(config.certFile);
  const key = readFileSync(config.keyFile);
  const ca = readFileSync(config.caFile);
  let listening = 0;
  const servers = 2 + config.fronts.length;
  const ready = () => {
    if (++listening === servers) process.stdout.write('ready\n');
  };
  tlsServer(
    { ...TLS_OPTIONS, cert, key, allowHalfOpen: true, highWaterMark: HWM } as never,
    serveBack,
  ).listen({ port: config.backTlsPort, host: '::', backlog: 1024 }, ready);
  netServer({ allowHalfOpen: true, highWaterMark: HWM } as never, serveBack).listen(
    { port: config.backPlainPort, host: '::', backlog: 1024 },
    ready,
  );
  for (const front of config.fronts) {
    const first = header(front.target);
    netServer({ allowHalfOpen: true, noDelay: true, highWaterMark: HWM } as never, (client) => {
      const options = { host: front.via.host, port: front.via.port, allowHalfOpen: true, highWaterMark: HWM };
      const upstream = front.via.tls
        ? // The certificate names a SPIFFE identity, not a host: the chain is checked, the name is not.
          tlsConnect({ ...options, ...TLS_OPTIONS, ca, checkServerIdentity: () => undefined } as never)
        : netConnect(options as never);
      upstream.setNoDelay(true);
      upstream.write(first);
      relay(client, upstream);
    }).listen({ port: front.port, host: '::', backlog: 1024 }, ready);
  }
  process.on('SIGTERM', () => process.exit(0));
}

main();
