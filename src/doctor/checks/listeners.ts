/**
 * Seed: "Confirm the state of sockets": *:15001, *:15006, *:15008 and 127.0.0.1:15080, held by
 * ztunnel. 15080 is the SOCKS5 listener, which Istio's ztunnel opens only with
 * UNSTABLE_ENABLE_SOCKS5=true: it is expected when that ztunnel says it is on, and checked (not
 * required) when the setting cannot be read.
 */
import { errorMessage } from '../../errors.js';
import { type DoctorContext, staleProxyNetns } from '../context.js';
import { formatOwners, isWildcard, listeningSockets, type SsSocket } from '../ss.js';
import type { CheckResult } from '../types.js';

const REQUIRED = [
  { port: 15001, local: false },
  { port: 15006, local: false },
  { port: 15008, local: false },
] as const;
const SOCKS5 = { port: 15080, local: true } as const;

function titleFor(socks5: boolean | undefined): string {
  if (socks5 === true)
    return 'listeners 15001, 15006, 15008 and 127.0.0.1:15080 in the pod, owned by ztunnel';
  if (socks5 === false)
    return 'listeners 15001, 15006 and 15008 in the pod, owned by ztunnel (SOCKS5 127.0.0.1:15080 off)';
  return 'listeners 15001, 15006, 15008 (and 127.0.0.1:15080 if SOCKS5 is on) in the pod, owned by ztunnel';
}

const show = (s: SsSocket) => `${s.localHost}:${s.localPort} (${formatOwners(s.owners)})`;

export async function checkListeners(ctx: DoctorContext): Promise<CheckResult> {
  const t = ctx.target;
  const socks5 = ctx.socks5?.enabled;
  const title = titleFor(socks5);
  const ssCommand = `${t.hints.inPod} ss -ntlp`;
  let sockets: SsSocket[];
  try {
    sockets = await listeningSockets(t.podNetns);
  } catch (err) {
    return { id: 'listeners', title, status: 'fail', detail: errorMessage(err), next: ssCommand };
  }
  const pid = ctx.ztunnelPid;
  const problems: string[] = [];
  const lines: string[] = [];
  const socks5Present = sockets.some((s) => s.localPort === SOCKS5.port && s.localHost === '127.0.0.1');
  // Unknown setting: the SOCKS5 listener is checked when it is there, not asked for when it is not.
  const expected =
    socks5 === true || (socks5 === undefined && socks5Present) ? [...REQUIRED, SOCKS5] : REQUIRED;
  for (const want of expected) {
    const onPort = sockets.filter((s) => s.localPort === want.port);
    const match = onPort.find((s) => (want.local ? s.localHost === '127.0.0.1' : isWildcard(s.localHost)));
    const where = `${want.local ? '127.0.0.1' : '*'}:${want.port}`;
    if (!match) {
      const other = onPort.map(show).join(', ');
      problems.push(other ? `${where} missing; the port is held by ${other}` : `${where} missing`);
      continue;
    }
    lines.push(`LISTEN ${show(match)}`);
    const foreign = onPort.flatMap((s) => s.owners).filter((o) => o.pid !== pid);
    if (pid === undefined)
      problems.push(`${where}: cannot tell whether it is ztunnel's (ztunnel's pid is unknown)`);
    else if (!match.owners.some((o) => o.pid === pid))
      problems.push(`${where} is held by ${formatOwners(match.owners)}, not ztunnel (pid ${pid})`);
    else if (foreign.length > 0)
      problems.push(`${where} is also held by ${formatOwners(foreign)} besides ztunnel (pid ${pid})`);
  }
  if (socks5 === false && socks5Present)
    lines.push(`127.0.0.1:${SOCKS5.port} is open although SOCKS5 is off (${ctx.socks5?.source})`);
  if (problems.length === 0) {
    const socks5Note =
      socks5 === undefined && !socks5Present
        ? `; no SOCKS5 listener, and whether it is on could not be read (no /config_dump socks5Addr, no environment of ztunnel)`
        : ctx.socks5
          ? ` (SOCKS5 ${socks5 ? 'on' : 'off'}: ${ctx.socks5.source})`
          : '';
    return {
      id: 'listeners',
      title,
      status: 'pass',
      detail: `all ${expected.length} held by ztunnel pid ${pid}${socks5Note}`,
      lines,
    };
  }
  const taken = problems.some((p) => /held by/.test(p));
  const stale = staleProxyNetns(ctx);
  return {
    id: 'listeners',
    title,
    status: 'fail',
    detail: problems.join('; '),
    lines,
    cause: stale
      ? `ztunnel's listeners for this pod are in another network namespace (inode ${stale.proxy}), not the pod's current one (inode ${stale.pod}): ztunnel was handed a stale netns of the pod`
      : taken
        ? 'another process in the pod holds a port ztunnel needs, so ztunnel cannot start (or share) its listeners'
        : 'ztunnel has no proxy running in this pod (not enrolled, pending, or ztunnel stopped)',
    next: ssCommand,
  };
}
