/**
 * A probe connection from inside the pod, checked by the kernel's own record: the pod's conntrack
 * entry for the probe must show the reply coming from port 15001 (the nat REDIRECT), and the 15001
 * listener that accepted it must be ztunnel's. The probe carries no mark, like an application's socket.
 *
 * By default it goes to an address of the pod's node (the source the node uses toward the pod), on a
 * port the doctor listens on there for the probe's life: captured, ztunnel carries it on to that
 * listener and logs a plain `connection complete` at INFO; not captured, the SYN reaches the node's
 * listener directly. Either way no packet leaves the node and nothing fails in ztunnel's log.
 * `--probe HOST:PORT` probes a given address instead (nothing listens there unless the user did).
 */
import type { Server, Socket } from 'node:net';
import { errorCode, errorMessage } from '../../errors.js';
import { OUTBOUND_PORT } from '../../node/contract.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../sys/index.js';
import type { DoctorContext } from '../context.js';
import { doctorError } from '../errors.js';
import { execIn } from '../netns-exec.js';
import { formatOwners, isWildcard, listeningSockets } from '../ss.js';
import type { CheckResult } from '../types.js';

const title = 'a probe connection from the pod is captured by ztunnel on 15001';
const CONNECT_TIMEOUT_MS = 3_000;
/** How long the node's listener waits for ztunnel's upstream leg, and the probe for its close. */
const CARRY_TIMEOUT_MS = 3_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(doctorError('ETIMEDOUT', `${what}: timed out`)), ms);
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

/** The source address `netns` would use toward `dst` (`ip route get`: a lookup, nothing is sent). */
async function sourceToward(netns: string | null, dst: string): Promise<string | undefined> {
  const out = await execIn(netns, 'ip', ['-j', 'route', 'get', dst]);
  const routes = JSON.parse(out) as { prefsrc?: string; dev?: string }[];
  return routes[0]?.prefsrc;
}

/** The pod's address (its source toward the internet) and the node's address toward the pod. */
async function nodeAddress(ctx: DoctorContext): Promise<string> {
  const t = ctx.target;
  const podIp = t.podIps?.[0] ?? (await sourceToward(t.podNetns, '192.0.2.1'));
  if (!podIp) throw doctorError('ERR_DOCTOR_TARGET', 'the pod has no route out: cannot tell its address');
  const node = await sourceToward(t.hostNetns, podIp);
  if (!node) throw doctorError('ERR_DOCTOR_TARGET', `the node has no route to the pod's address ${podIp}`);
  return node;
}

/** Where the probe goes, and the node's listener that stands there when the doctor chose the address. */
async function probeDestination(
  ctx: DoctorContext,
): Promise<{ host: string; port: number; listener?: Server; carried?: Promise<Socket> }> {
  const t = ctx.target;
  if (t.probe) return { ...t.probe };
  const host = await nodeAddress(ctx);
  const netns = t.hostNetns === null ? null : NetnsHandle.open(t.hostNetns);
  try {
    const listener = await listenInNetns(netns, { host, port: 0 });
    const carried = new Promise<Socket>((resolve) =>
      listener.once('connection', (s: Socket) => {
        s.on('error', () => {});
        // Half-closes answered in kind, so ztunnel sees both ends finish cleanly.
        s.on('end', () => s.end());
        resolve(s);
      }),
    );
    carried.catch(() => {});
    return { host, port: (listener.address() as { port: number }).port, listener, carried };
  } finally {
    netns?.close();
  }
}

export async function checkProbe(ctx: DoctorContext): Promise<CheckResult> {
  const t = ctx.target;
  const inPod = t.hints.inPod;
  let dest: Awaited<ReturnType<typeof probeDestination>>;
  try {
    dest = await probeDestination(ctx);
  } catch (err) {
    return {
      id: 'probe',
      title,
      status: 'skip',
      detail: `no address of the node to probe: ${errorMessage(err)}`,
      next: `give one with --probe HOST:PORT (an address that stays on the node); ${inPod} ip route`,
    };
  }
  const dst = `${dest.host}:${dest.port}`;
  const netns = NetnsHandle.open(t.podNetns);
  let socket: Socket | undefined;
  // A known source port (below the ephemeral range), so conntrack can be asked about the probe even
  // when the connect fails; another one is tried if it happens to be taken.
  let sport = 0;
  try {
    for (let attempt = 0; !socket; attempt++) {
      sport = 20000 + Math.floor(Math.random() * 12000);
      try {
        socket = connectInNetns(netns, { host: dest.host, port: dest.port, localPort: sport });
      } catch (err) {
        if (errorCode(err) !== 'EADDRINUSE' || attempt >= 5) throw err;
      }
    }
    socket.on('error', () => {});
    try {
      await withTimeout(connected(socket), CONNECT_TIMEOUT_MS, `connecting to ${dst}`);
    } catch (err) {
      const code = errorCode(err) ?? errorMessage(err);
      // A --probe address nobody answers: ztunnel resets the probe once its upstream leg fails, and
      // on a busy machine that reset can land before the connect completes in userspace. The
      // handshake did happen: ask conntrack.
      if (code === 'ECONNRESET') return await verdictFromConntrack(ctx, dest.host, dst, sport, undefined);
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
    // Captured, ztunnel dials the node's listener: wait for that leg, then close both ends gracefully.
    let carried: boolean | undefined;
    if (dest.carried) {
      const upstream = await withTimeout(dest.carried, CARRY_TIMEOUT_MS, 'ztunnel carrying the probe').catch(
        () => undefined,
      );
      carried = upstream !== undefined;
      const closed = new Promise((resolve) => socket!.once('close', resolve));
      socket.end();
      await withTimeout(closed, CARRY_TIMEOUT_MS, 'closing the probe').catch(() => undefined);
    }
    return await verdictFromConntrack(ctx, dest.host, dst, sport, carried);
  } finally {
    socket?.destroy();
    netns.close();
    if (dest.listener) {
      const listener = dest.listener;
      await new Promise((resolve) => {
        listener.close(resolve);
        void dest.carried?.then((s) => s.destroy());
      });
    }
  }
}

async function verdictFromConntrack(
  ctx: DoctorContext,
  host: string,
  dst: string,
  sport: number,
  carried: boolean | undefined,
): Promise<CheckResult> {
  const t = ctx.target;
  const inPod = t.hints.inPod;
  const port = await redirectedPort(t.podNetns, host, sport);
  if (port !== OUTBOUND_PORT) {
    return {
      id: 'probe',
      title,
      status: 'fail',
      detail: `the probe to ${dst} connected, but conntrack shows it ${port === undefined ? 'was not NATed' : `went to port ${port}`}, not ${OUTBOUND_PORT}`,
      cause: 'something other than the in-pod 15001 redirect answered the probe',
      next: `${inPod} conntrack -L -p tcp --orig-dst ${host}`,
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
    detail: `port ${sport} -> ${dst} was redirected to :${OUTBOUND_PORT} (conntrack) and accepted by ztunnel pid ${pid}${
      carried === undefined
        ? ''
        : carried
          ? ", which carried it on to the doctor's listener on the node"
          : " (it did not reach the doctor's listener on the node)"
    }`,
  };
}
