/**
 * The upstream resolvers: the `nameserver` lines of a resolv.conf. Like Istio's ztunnel, the proxy uses
 * its own (the node's) file for every pod; the pods' search lists are not needed upstream, since a
 * forwarded query already carries the name the pod's stub resolver built.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

/** resolv.conf's own default when it names no server. */
const DEFAULT_NAMESERVER = '127.0.0.1';
/** glibc reads at most three. */
const MAX_NAMESERVERS = 3;

export function parseResolvConf(text: string): string[] {
  const servers: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, value] = line.split(/\s+/);
    if (keyword !== 'nameserver' || !value) continue;
    // A link-local IPv6 server may carry its zone (fe80::1%eth0): Node's sockets take it as it is.
    if (isIP(value.split('%')[0] ?? '') === 0) continue;
    if (servers.length < MAX_NAMESERVERS) servers.push(value);
  }
  return servers.length ? servers : [DEFAULT_NAMESERVER];
}

export function readResolvConf(path: string): string[] {
  return parseResolvConf(readFileSync(path, 'utf8'));
}
