/**
 * In-pod traffic redirection, the programmatic API (the node agent calls this):
 *
 *   const r = createRedirector({ backend: 'iptables', inbound: 'tproxy', dnsCapture: true });
 *   await r.apply(netns, podIps);   // idempotent; 'unchanged' when already correct
 *   await r.verify(netns, podIps);  // { ok, missing, unexpected }
 *   await r.reconcile(netns, podIps); // repairs drifted ISTIO_* chains / foreign jumps
 *   await r.remove(netns);          // back to the pre-apply state; rules not ours stay
 *   const probes = await r.hostProbes(); await probes.install(); await probes.addPodIp(uid, ip);
 *
 * `netns` is a path or a NetnsHandle; commands run under nsenter, never in this process.
 */

import type { NetnsRef } from '../sys/netns.js';
import type { Family, InboundMode } from './constants.js';
import { redirectError } from './errors.js';
import { netnsPath, type Place, requireTools } from './exec.js';
import { type HostProbes, hostProbes } from './host-probe.js';
import { iptablesBackend, type RuleBackend } from './iptables-backend.js';
import { podRuleset } from './model.js';
import { nftBackend } from './nft-backend.js';
import { ensureRoutes, missingRoutes, podFamilies, removeRoutes } from './routes.js';
import { detectXtables, type Xtables } from './xtables.js';

export type { Family, InboundMode } from './constants.js';
export type { HostProbes } from './host-probe.js';

export type BackendName = 'iptables' | 'nftables';

export interface RedirectorOptions {
  backend?: BackendName;
  inbound?: InboundMode;
  /** Capture the pod's DNS (port 53) to the proxy's 15053 (default false: the seed's ruleset exactly). */
  dnsCapture?: boolean;
  /** The node netns, where the iptables variant is detected and host probe rules live (default: ours). */
  nodeNetns?: NetnsRef | null;
  /** PATH used to find iptables, nft, ip, nsenter, ipset (default: this process's PATH). */
  path?: string;
  /** Skip detection: use this iptables variant. */
  xtables?: Xtables;
}

export interface VerifyResult {
  ok: boolean;
  families: Family[];
  /** Rules/chains/routes that should be there and are not. */
  missing: string[];
  /** Rules/chains of ours (ISTIO_*, jumps into them) that should not be there. */
  unexpected: string[];
}

export type Outcome = 'applied' | 'unchanged' | 'repaired' | 'removed';

export interface Redirector {
  apply(netns: NetnsRef, podIps?: readonly string[]): Promise<Outcome>;
  verify(netns: NetnsRef, podIps?: readonly string[]): Promise<VerifyResult>;
  reconcile(netns: NetnsRef, podIps?: readonly string[]): Promise<Outcome>;
  remove(netns: NetnsRef): Promise<Outcome>;
  hostProbes(): Promise<HostProbes>;
}

export function parseBackend(value: string): BackendName {
  if (value === 'iptables' || value === 'nftables') return value;
  throw redirectError(
    'ERR_REDIRECT_BAD_OPTION',
    `unknown backend '${value}': use --backend iptables or --backend nftables`,
  );
}

export function parseInbound(value: string): InboundMode {
  if (value === 'tproxy' || value === 'redirect') return value;
  throw redirectError(
    'ERR_REDIRECT_BAD_OPTION',
    `unknown inbound mode '${value}': use --inbound tproxy or --inbound redirect`,
  );
}

export function createRedirector(options: RedirectorOptions = {}): Redirector {
  const known = new Set(['backend', 'inbound', 'dnsCapture', 'nodeNetns', 'path', 'xtables']);
  for (const key of Object.keys(options)) {
    if (!known.has(key))
      throw redirectError(
        'ERR_REDIRECT_BAD_OPTION',
        `unknown redirector option '${key}' (known: ${[...known].join(', ')})`,
      );
  }
  const backendName = parseBackend(options.backend ?? 'iptables');
  const inbound = parseInbound(options.inbound ?? 'tproxy');
  const dnsCapture = options.dnsCapture ?? false;
  const path = options.path ?? process.env.PATH ?? '';
  const nodePlace = (): Place => ({
    netns: options.nodeNetns == null ? null : netnsPath(options.nodeNetns),
    path,
  });
  let xt: Promise<Xtables> | undefined = options.xtables ? Promise.resolve(options.xtables) : undefined;
  const getXtables = () => {
    xt ??= detectXtables(nodePlace());
    return xt;
  };

  async function backend(): Promise<RuleBackend> {
    return backendName === 'nftables' ? nftBackend() : iptablesBackend(await getXtables());
  }

  /** Resolves the netns, the families and the backend, and fails before any change if a tool is missing. */
  async function prepare(netns: NetnsRef, podIps?: readonly string[]) {
    const place: Place = { netns: netnsPath(netns), path };
    requireTools(place, ['ip', 'cat']);
    const b = await backend();
    const families = await podFamilies(place, podIps);
    requireTools(place, b.tools(families));
    return {
      place,
      b,
      families,
      rulesets: families.map((family) => podRuleset({ family, inbound, dnsCapture })),
    };
  }

  async function verify(netns: NetnsRef, podIps?: readonly string[]): Promise<VerifyResult> {
    const { place, b, families, rulesets } = await prepare(netns, podIps);
    const d = await b.inspect(place, rulesets);
    const missing = [...d.missing, ...(await missingRoutes(place, families))];
    return {
      ok: missing.length === 0 && d.unexpected.length === 0,
      families,
      missing,
      unexpected: d.unexpected,
    };
  }

  /**
   * Writes rules and routes. A failed first apply takes out everything of ours so nothing is
   * half-applied; a failed repair leaves the (per-table atomic) state as is rather than uncapture the pod.
   */
  async function write(
    netns: NetnsRef,
    podIps: readonly string[] | undefined,
    repair: boolean,
  ): Promise<Outcome> {
    const { place, b, families, rulesets } = await prepare(netns, podIps);
    const d = await b.inspect(place, rulesets);
    const routes = await missingRoutes(place, families);
    if (d.missing.length === 0 && d.unexpected.length === 0 && routes.length === 0) return 'unchanged';
    const rulesDrifted = d.present && (d.missing.length > 0 || d.unexpected.length > 0);
    if (rulesDrifted && !repair) {
      throw redirectError(
        'ERR_REDIRECT_DRIFT',
        `netns ${place.netns} already has redirection rules that differ from the expected ones (${d.missing.length} missing, ${d.unexpected.length} unexpected): run 'ambit redirect reconcile' to repair them, or 'verify' to see the difference`,
      );
    }
    try {
      if (d.missing.length || d.unexpected.length) await b.write(place, rulesets);
      await ensureRoutes(place, families);
    } catch (err) {
      if (!d.present) {
        await b.remove(place).catch(() => undefined);
        await removeRoutes(place).catch(() => undefined);
      }
      throw err;
    }
    return rulesDrifted ? 'repaired' : 'applied';
  }

  return {
    apply: (netns, podIps) => write(netns, podIps, false),
    reconcile: (netns, podIps) => write(netns, podIps, true),
    verify,
    async remove(netns) {
      const place: Place = { netns: netnsPath(netns), path };
      requireTools(place, ['ip']);
      const b = await backend();
      requireTools(place, b.tools(['ipv4']));
      await b.remove(place);
      await removeRoutes(place);
      return 'removed';
    },
    async hostProbes() {
      return hostProbes(nodePlace(), await getXtables());
    },
  };
}
