/**
 * Reads ztunnel's admin server from where it listens: localhost inside the node's netns. The HTTP
 * connection is made inside that netns (connectInNetns), so this works from the host's namespace.
 */

import { AmbitError, errorCode, errorMessage } from '../errors.js';
import { formatListenAddress, type ListenAddress } from '../runtime/listen-address.js';
import { connected, connectInNetns, NetnsHandle } from '../sys/index.js';
import type { ConfigDump } from '../ztunnel/admin/config-dump.js';
import { type DoctorErrorCode, doctorError } from './errors.js';
import { listeningSockets } from './ss.js';

const TIMEOUT_MS = 5_000;

/** `localhost` may be bound to either loopback; the rest are tried as given. */
function candidates(addr: ListenAddress): string[] {
  return addr.host === 'localhost' ? ['127.0.0.1', '::1'] : [addr.host];
}

/** One HTTP/1.0 GET on a socket made inside the netns; the server closes when the body is done. */
async function get(netns: NetnsHandle | null, host: string, port: number, path: string): Promise<string> {
  const socket = await connected(connectInNetns(netns, { host, port }));
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(
      () => socket.destroy(doctorError('ETIMEDOUT', `no answer within ${TIMEOUT_MS} ms`)),
      TIMEOUT_MS,
    );
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
  });
  const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(text)?.[1]);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  if (status !== 200)
    throw doctorError(
      'ERR_DOCTOR_ADMIN',
      `GET ${path} answered ${status || 'garbage'}: ${body.trim().slice(0, 200)}`,
    );
  return body;
}

/** GET `path` from the admin server; an unreachable server is ERR_DOCTOR_ADMIN_UNREACHABLE with the errno. */
export async function adminGet(nodeNetns: string | null, addr: ListenAddress, path: string): Promise<string> {
  const netns = nodeNetns === null ? null : NetnsHandle.open(nodeNetns);
  try {
    let last: unknown;
    for (const host of candidates(addr)) {
      try {
        return await get(netns, host, addr.port, path);
      } catch (err) {
        if (err instanceof AmbitError && err.code === ('ERR_DOCTOR_ADMIN' satisfies DoctorErrorCode))
          throw err;
        last ??= err;
      }
    }
    throw doctorError(
      'ERR_DOCTOR_ADMIN_UNREACHABLE',
      `cannot reach ztunnel's admin server at ${formatListenAddress(addr)}${nodeNetns ? ` in ${nodeNetns}` : ''}: ${errorCode(last) ?? errorMessage(last)}`,
      { cause: last },
    );
  } finally {
    netns?.close();
  }
}

export async function fetchConfigDump(nodeNetns: string | null, addr: ListenAddress): Promise<ConfigDump> {
  const text = await adminGet(nodeNetns, addr, '/config_dump');
  try {
    return JSON.parse(text) as ConfigDump;
  } catch {
    throw doctorError('ERR_DOCTOR_ADMIN', `/config_dump at ${formatListenAddress(addr)} is not JSON`);
  }
}

/** The pid of the process listening on the admin port: that process is ztunnel. */
export async function ztunnelPid(nodeNetns: string | null, addr: ListenAddress): Promise<number | undefined> {
  const sockets = await listeningSockets(nodeNetns);
  return sockets.find((s) => s.localPort === addr.port && s.owners.length > 0)?.owners[0]?.pid;
}
