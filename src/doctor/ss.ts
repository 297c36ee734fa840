/**
 * `ss -Htnp` / `ss -Htlnp` lines as records: state, local and peer address, and the processes
 * holding the socket (`users:(("ztunnel",pid=42,fd=21))`). ss matches sockets to processes by inode,
 * so a ztunnel in another netns still shows as the owner of the sockets it made in the pod.
 */
import { execIn } from './netns-exec.js';

export interface SocketOwner {
  command: string;
  pid: number;
}

export interface SsSocket {
  state: string;
  /** `*`, `0.0.0.0`, `[::]`, `127.0.0.1`, `[::ffff:10.0.0.1]` ... as ss prints it. */
  localHost: string;
  localPort: number;
  peerHost: string;
  peerPort: number;
  owners: SocketOwner[];
}

function splitAddress(text: string): { host: string; port: number } | undefined {
  const i = text.lastIndexOf(':');
  if (i <= 0) return undefined;
  const port = Number(text.slice(i + 1));
  if (!Number.isInteger(port)) return { host: text.slice(0, i), port: 0 };
  return { host: text.slice(0, i).replace(/%\S+$/, ''), port };
}

export function parseSs(output: string): SsSocket[] {
  const out: SsSocket[] = [];
  for (const line of output.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5) continue;
    const local = splitAddress(cols[3]!);
    const peer = splitAddress(cols[4]!);
    if (!local || !peer) continue;
    const owners = [...line.matchAll(/\("([^"]*)",pid=(\d+)/g)].map((m) => ({
      command: m[1]!,
      pid: Number(m[2]),
    }));
    out.push({
      state: cols[0]!,
      localHost: local.host,
      localPort: local.port,
      peerHost: peer.host,
      peerPort: peer.port,
      owners,
    });
  }
  return out;
}

/** Listening TCP sockets in `netns`. */
export async function listeningSockets(netns: string | null): Promise<SsSocket[]> {
  return parseSs(await execIn(netns, 'ss', ['-Htlnp']));
}

/** Connected TCP sockets in `netns` (every state but LISTEN). */
export async function connectedSockets(netns: string | null): Promise<SsSocket[]> {
  return parseSs(await execIn(netns, 'ss', ['-Htnp']));
}

export const isWildcard = (host: string) => host === '*' || host === '0.0.0.0' || host === '[::]';

export function formatOwners(owners: readonly SocketOwner[]): string {
  return owners.length === 0 ? 'no process' : owners.map((o) => `${o.command} pid ${o.pid}`).join(', ');
}
