/**
 * A probe connection from inside the pod to a TEST-NET address that no namespace owns: only the
 * pod's nat OUTPUT REDIRECT can complete that handshake, locally, on 15001. The check then finds
 * the accepted end in the pod with `ss`: local port 15001, peer = the probe's own address, held
 * by ztunnel. The probe carries no mark, exactly like an application's socket.
 */
import type { Socket } from 'node:net';
import { errorCode, errorMessage } from '../../errors.js';
import { connected, connectInNetns, NetnsHandle } from '../../sys/index.js';
import type { DoctorContext } from '../context.js';
import { connectedSockets, formatOwners, type SsSocket } from '../ss.js';
import type { CheckResult } from '../types.js';

const title = 'a probe connection from the pod is captured by ztunnel on 15001';
const CONNECT_TIMEOUT_MS = 3_000;
/** Accepting is asynchronous; the owner shows once ztunnel has taken the socket off the queue. */
const OWNER_POLLS = 50;
const OWNER_POLL_MS = 40;

const unmapped = (host: string) => host.replace(/^\[?(::ffff:)?/, '').replace(/\]$/, '');

function withTimeout(socket: Socket): Promise<Socket> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    connected(socket),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
        CONNECT_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function checkProbe(ctx: DoctorContext): Promise<CheckResult> {
  const t = ctx.target;
  const dst = `${t.probe.host}:${t.probe.port}`;
  const inPod = t.hints.inPod;
  const netns = NetnsHandle.open(t.podNetns);
  let socket: Socket | undefined;
  try {
    socket = connectInNetns(netns, { host: t.probe.host, port: t.probe.port });
    socket.on('error', () => {});
    try {
      await withTimeout(socket);
    } catch (err) {
      const code = errorCode(err) ?? errorMessage(err);
      const refused = code === 'ECONNREFUSED';
      return {
        id: 'probe',
        title,
        status: 'fail',
        detail: `connecting to ${dst} from the pod: ${code}`,
        cause: refused
          ? 'the rules redirect the probe to 15001 but nothing accepts there: ztunnel is not proxying for this pod'
          : 'the probe was not redirected: the nat OUTPUT rule to 15001 is missing or bypassed',
        next: refused ? `${inPod} ss -ntlp` : `${inPod} iptables-save -t nat`,
      };
    }
    const local = { host: unmapped(socket.localAddress ?? ''), port: socket.localPort ?? 0 };
    let accepted: SsSocket | undefined;
    for (let i = 0; i < OWNER_POLLS; i++) {
      accepted = (await connectedSockets(t.podNetns)).find(
        (s) => s.localPort === 15001 && s.peerPort === local.port && unmapped(s.peerHost) === local.host,
      );
      if (accepted && accepted.owners.length > 0) break;
      await new Promise((r) => setTimeout(r, OWNER_POLL_MS));
    }
    if (!accepted) {
      return {
        id: 'probe',
        title,
        status: 'fail',
        detail: `the probe to ${dst} connected, but no socket on port 15001 in the pod has it as peer`,
        cause: 'something other than the in-pod 15001 listener answered: the redirect points elsewhere',
        next: `${inPod} iptables-save -t nat`,
      };
    }
    const pid = ctx.ztunnelPid;
    if (pid === undefined || !accepted.owners.some((o) => o.pid === pid)) {
      return {
        id: 'probe',
        title,
        status: 'fail',
        detail: `the probe was captured on 15001 but accepted by ${formatOwners(accepted.owners)}${pid === undefined ? ' (ztunnel pid unknown)' : `, not ztunnel pid ${pid}`}`,
        cause: 'a process other than ztunnel listens on 15001 in the pod',
        next: `${inPod} ss -ntlp`,
      };
    }
    return {
      id: 'probe',
      title,
      status: 'pass',
      detail: `${local.host}:${local.port} -> ${dst} was accepted on :15001 by ztunnel pid ${pid}`,
    };
  } finally {
    socket?.destroy();
    netns.close();
  }
}
