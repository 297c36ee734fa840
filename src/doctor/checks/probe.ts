/**
 * A probe connection from inside the pod to a TEST-NET address that no network owns: only a local
 * redirect can complete that handshake. The kernel's own record says where it went: the pod's
 * conntrack entry for the probe must show the reply coming from port 15001 (the nat REDIRECT),
 * and the 15001 listener that accepted it must be ztunnel's. The probe carries no mark, like an
 * application's socket. ztunnel then fails the upstream leg and resets the probe; that is expected.
 */
import type { Socket } from 'node:net';
import { errorCode, errorMessage } from '../../errors.js';
import { OUTBOUND_PORT } from '../../node/contract.js';
import { connected, connectInNetns, NetnsHandle } from '../../sys/index.js';
import type { DoctorContext } from '../context.js';
import { doctorError } from '../errors.js';
import { execIn } from '../netns-exec.js';
import { formatOwners, isWildcard, listeningSockets } from '../ss.js';
import type { CheckResult } from '../types.js';

const title = 'a probe connection from the pod is captured by ztunnel on 15001';
const CONNECT_TIMEOUT_MS = 3_000;

function withTimeout(socket: Socket): Promise<Socket> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    connected(socket),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(doctorError('ETIMEDOUT', 'timed out')), CONNECT_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The reply-direction source port of the probe's conntrack entry: where the kernel sent it. */
async function redirectedPort(netns: string, dst: string, sport: number): Promise<number | undefined> {
  const out = await execIn(netns, 'conntrack', [
    '-L',
    '-p',
    'tcp',
    '--orig-dst',
    dst,
    '--sport',
    String(sport),
  ]);
  for (const line of out.split('\n')) {
    const sports = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]));
    if (sports[0] === sport && sports[1] !== undefined) return sports[1];
  }
  return undefined;
}

export async function checkProbe(ctx: DoctorContext): Promise<CheckResult> {
  const t = ctx.target;
  const dst = `${t.probe.host}:${t.probe.port}`;
  const inPod = t.hints.inPod;
  const netns = NetnsHandle.open(t.podNetns);
  let socket: Socket | undefined;
  // A known source port (below the ephemeral range), so conntrack can be asked about the probe even
  // when the connect fails; another one is tried if it happens to be taken.
  let sport = 0;
  try {
    for (let attempt = 0; !socket; attempt++) {
      sport = 20000 + Math.floor(Math.random() * 12000);
      try {
        socket = connectInNetns(netns, { host: t.probe.host, port: t.probe.port, localPort: sport });
      } catch (err) {
        if (errorCode(err) !== 'EADDRINUSE' || attempt >= 5) throw err;
      }
    }
    socket.on('error', () => {});
    try {
      await withTimeout(socket);
    } catch (err) {
      const code = errorCode(err) ?? errorMessage(err);
      // ztunnel resets the probe once its upstream leg fails; on a busy machine that reset can
      // land before the connect completes in userspace. The handshake did happen: ask conntrack.
      if (code === 'ECONNRESET') return await verdictFromConntrack(ctx, dst, sport);
      const refused = code === 'ECONNREFUSED';
      return {
        id: 'probe',
        title,
        status: 'fail',
        detail: `connecting to ${dst} from the pod: ${code}`,
        cause: refused
          ? `the rules redirect the probe to ${OUTBOUND_PORT} but nothing accepts there: ztunnel is not proxying for this pod`
          : `the probe was not redirected: the nat OUTPUT rule to ${OUTBOUND_PORT} is missing or bypassed`,
        next: refused ? `${inPod} ss -ntlp` : `${inPod} iptables-save -t nat`,
      };
    }
    return await verdictFromConntrack(ctx, dst, sport);
  } finally {
    socket?.destroy();
    netns.close();
  }
}

async function verdictFromConntrack(ctx: DoctorContext, dst: string, sport: number): Promise<CheckResult> {
  const t = ctx.target;
  const inPod = t.hints.inPod;
  const port = await redirectedPort(t.podNetns, t.probe.host, sport);
  if (port !== OUTBOUND_PORT) {
    return {
      id: 'probe',
      title,
      status: 'fail',
      detail: `the probe to ${dst} connected, but conntrack shows it ${port === undefined ? 'was not NATed' : `went to port ${port}`}, not ${OUTBOUND_PORT}`,
      cause: 'something other than the in-pod 15001 redirect answered the probe',
      next: `${inPod} conntrack -L -p tcp --orig-dst ${t.probe.host}`,
    };
  }
  const listener = (await listeningSockets(t.podNetns)).find(
    (s) => s.localPort === OUTBOUND_PORT && isWildcard(s.localHost),
  );
  const pid = ctx.ztunnelPid;
  if (!listener || pid === undefined || !listener.owners.some((o) => o.pid === pid)) {
    const holder = listener ? formatOwners(listener.owners) : 'nothing (it has closed since)';
    return {
      id: 'probe',
      title,
      status: 'fail',
      detail: `the probe was redirected to :${OUTBOUND_PORT}, held by ${holder}${pid === undefined ? '; ztunnel pid unknown' : `, not ztunnel pid ${pid}`}`,
      cause: `a process other than ztunnel listens on ${OUTBOUND_PORT} in the pod`,
      next: `${inPod} ss -ntlp`,
    };
  }
  return {
    id: 'probe',
    title,
    status: 'pass',
    detail: `port ${sport} -> ${dst} was redirected to :${OUTBOUND_PORT} (conntrack) and accepted by ztunnel pid ${pid}`,
  };
}
