/**
 * The lab's stand-in for a Kubernetes control plane: `startApiServer({listen, stateFile})` serves
 * the Kubernetes REST + watch protocol over HTTPS and writes a kubeconfig with its admin token.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import { type AddressInfo, isIP, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { ApiAuthorizer } from './authorizer.js';
import { apiServerError } from './errors.js';
import { writeKubeconfig } from './kubeconfig.js';
import { type Credentials, readStateFile, StateWriter } from './persistence.js';
import { ApiHandler } from './server.js';
import type { ServiceFamily } from './service-ips.js';
import { Store } from './store.js';
import { newServingTls } from './tls.js';
import { ensureStaticUsers, newTokenSecrets, TokenAuthority } from './tokens.js';

export { kubeconfigYaml, writeKubeconfig } from './kubeconfig.js';
export { nodeUser } from './node-authorizer.js';
export type { KObject } from './objects.js';
export {
  CNI_SERVICE_ACCOUNT,
  ISTIO_NAMESPACE,
  ISTIOD_SERVICE_ACCOUNT,
  ZTUNNEL_SERVICE_ACCOUNT,
} from './roles.js';
export type { ServiceFamily } from './service-ips.js';
export { StatusError } from './status.js';
export { API_AUDIENCE } from './tokens.js';

const log = logger('ambit::lab::apiserver');

export interface ApiServerOptions {
  /** `host:port`, `[v6]:port` or a port; default 127.0.0.1:0 (any free port). */
  listen?: string;
  /** Where objects and credentials persist; without it the cluster lives in memory only. */
  stateFile?: string;
  /** Default: `kubeconfig` beside the state file; none is written without either. */
  kubeconfigPath?: string;
  /** How many changes watches can replay; older resourceVersions get 410 Gone. */
  historySize?: number;
  bookmarkIntervalMs?: number;
  /** Debounce of state file writes. */
  persistDelayMs?: number;
  /**
   * Users with a static bearer token (kube-apiserver's --token-auth-file), e.g. the kubelets'
   * `system:node:<name>` in `system:nodes`; their tokens persist in the state file.
   */
  users?: { name: string; groups?: string[] }[];
  /** The service IP families, primary first (default IPv4 only): which cluster IPs Services get. */
  serviceFamilies?: readonly ServiceFamily[];
}

export interface ApiServer {
  url: string;
  token: string;
  /** The bearer token of a static user given in `users`. */
  userToken(name: string): string;
  kubeconfigPath: string | undefined;
  /** PEM of the CA that signed the serving certificate. */
  caPem: string;
  store: Store;
  writeKubeconfig(path: string): void;
  /** Ends every open watch, as an API server restart does; clients rewatch from their last version. */
  dropWatches(): void;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+))?:?(\d+)$/.exec(listen.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535)
    throw apiServerError(
      'APISERVER_BAD_LISTEN',
      `--listen "${listen}" is not host:port (e.g. 127.0.0.1:6443)`,
    );
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

export async function startApiServer(opts: ApiServerOptions = {}): Promise<ApiServer> {
  const { host, port } = parseListen(opts.listen ?? '127.0.0.1:0');
  const saved = opts.stateFile ? readStateFile(opts.stateFile) : undefined;
  const credentials: Credentials = saved?.credentials ?? {
    ...newTokenSecrets(),
    tls: await newServingTls(isIP(host) && host !== '0.0.0.0' && host !== '::' ? [host] : []),
  };
  ensureStaticUsers(credentials, opts.users ?? []);
  const store = new Store(opts.historySize ?? 1000, saved);
  if (opts.serviceFamilies) store.serviceFamilies = opts.serviceFamilies;
  const tokens = new TokenAuthority(credentials, store);

  const stateFile = opts.stateFile;
  const writer = stateFile
    ? new StateWriter(
        stateFile,
        opts.persistDelayMs ?? 50,
        () => ({ version: 1, credentials, ...store.snapshot() }),
        (err) => log.error('cannot write the state file', { path: stateFile, error: errorMessage(err) }),
      )
    : undefined;
  if (writer) {
    store.subscribe(() => writer.schedule());
    writer.flush();
  }

  let address = '';
  const handler = new ApiHandler({
    store,
    tokens,
    authorizer: new ApiAuthorizer(store),
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 15000,
    serverAddress: () => address,
  });
  const { certPem, keyPem, caPem } = credentials.tls;
  const server: Server = createServer({ cert: certPem + caPem, key: keyPem }, handler.handle);
  server.on('clientError', (_err, socket) => socket.destroy());
  // Every socket, TLS handshakes included: close() must not wait for a client that connected late.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(port, host);
  await once(server, 'listening');
  const a = server.address() as AddressInfo;
  // A wildcard listener is reached through loopback.
  const dial = a.address === '0.0.0.0' ? '127.0.0.1' : a.address === '::' ? '::1' : a.address;
  address = a.family === 'IPv6' ? `[${dial}]:${a.port}` : `${dial}:${a.port}`;
  const url = `https://${address}`;

  const kubeconfigPath =
    opts.kubeconfigPath ?? (stateFile ? join(dirname(stateFile), 'kubeconfig') : undefined);
  if (kubeconfigPath) writeKubeconfig(kubeconfigPath, url, credentials.adminToken, caPem);
  log.info('lab API server listening', {
    url,
    state: stateFile ?? 'memory',
    kubeconfig: kubeconfigPath,
    resourceVersion: store.resourceVersion,
  });

  return {
    url,
    token: credentials.adminToken,
    userToken(name) {
      const token = tokens.userToken(name);
      if (!token)
        throw apiServerError('APISERVER_NO_SUCH_USER', `the lab API server has no static user ${name}`);
      return token;
    },
    kubeconfigPath,
    store,
    caPem,
    writeKubeconfig: (path) => writeKubeconfig(path, url, credentials.adminToken, caPem),
    dropWatches() {
      for (const w of [...handler.watches]) w.close();
    },
    async close() {
      handler.closing = true;
      for (const w of [...handler.watches]) w.close();
      const closed = once(server, 'close');
      server.close();
      for (const socket of sockets) socket.destroy();
      await closed;
      writer?.flush();
    },
  };
}
