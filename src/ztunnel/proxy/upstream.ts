/**
 * Proxying one accepted connection to a plain TCP upstream from the pod (its sockets: in the pod netns,
 * marked, so the pod's rules let it out), with telemetry at both ends. Shared by outbound, inbound
 * plaintext and SOCKS5.
 */
import type { Socket } from 'node:net';
import { errorCode, errorMessage } from '../../errors.js';
import { copyBidirectional } from '../copy.js';
import type { ConnectionRecord } from './connection-record.js';
import type { PodContext } from './context.js';
import { proxyError } from './errors.js';

export interface UpstreamTarget {
  host: string;
  port: number;
  /** Spoof this source address (IP_TRANSPARENT + bind), so the app sees the real client. */
  spoofSource?: string;
  /** Aborting gives up the connection (e.g. the HBONE stream it was for is gone). */
  signal?: AbortSignal;
}

/** Connects from the pod netns; resolves with the connected socket or rejects after the timeout. */
export function connectUpstream(pod: PodContext, target: UpstreamTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (target.signal?.aborted) {
      reject(proxyError('ABORT_ERR', 'connection no longer wanted'));
      return;
    }
    if (pod.deps.fds && !pod.deps.fds.tryTake()) {
      reject(proxyError('EMFILE', 'open files near the process limit: new upstream connections refused'));
      return;
    }
    let socket: Socket;
    try {
      socket = pod.sockets.connect(target, { spoofSource: target.spoofSource, proxied: true });
    } catch (err) {
      reject(err);
      return;
    }
    const timer = setTimeout(() => {
      socket.destroy();
      reject(proxyError('ETIMEDOUT', `connection to ${target.host}:${target.port} timed out`));
    }, pod.deps.connectTimeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      target.signal?.removeEventListener('abort', onAbort);
      reject(err);
    };
    // Destroyed while connecting (the pod's proxy stopped): neither 'connect' nor 'error' will come.
    const onClose = () => {
      clearTimeout(timer);
      target.signal?.removeEventListener('abort', onAbort);
      if (target.signal?.aborted) reject(proxyError('ABORT_ERR', 'connection no longer wanted'));
      else reject(proxyError('ERR_PROXY_STOPPED', 'proxy stopped while connecting upstream'));
    };
    const onAbort = () => socket.destroy(); // 'close' then rejects
    target.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      clearTimeout(timer);
      target.signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve(socket);
    });
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

/**
 * Connects to `target` and copies both ways until done. A failed connect resets the downstream
 * (the client sees the refusal as it would without the proxy) and is logged with the error.
 */
export async function proxyToUpstream(
  pod: PodContext,
  downstream: Socket,
  target: UpstreamTarget,
  record: ConnectionRecord,
): Promise<void> {
  record.count();
  record.opened();
  let upstream: Socket;
  try {
    upstream = await connectUpstream(pod, target);
  } catch (err) {
    record.info.responseFlags = 'CONNECT';
    downstream.resetAndDestroy();
    record.close(undefined, `connection failed: ${errorCode(err) ?? errorMessage(err)}`);
    return;
  }
  upstream.setNoDelay(true);
  const result = await copyBidirectional(downstream, upstream);
  record.close(result, result.error ? errorMessage(result.error) : undefined);
}
