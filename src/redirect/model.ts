/**
 * The redirection rules as data: which packets each chain matches and what it does with them.
 * Backends (iptables, nftables) render the same model, so both capture exactly the same traffic.
 */

import {
  DNS_PORT,
  INBOUND_HBONE_PORT,
  INBOUND_PLAINTEXT_PORT,
  OUTBOUND_PORT,
  PROXY_MARK,
  PROXY_MASK,
  RESTORE_MASK,
  TPROXY_MARK,
  TPROXY_MASK,
} from '../node/contract.js';
import {
  CHAIN_OUTPUT,
  CHAIN_POSTRT,
  CHAIN_PRERT,
  DNS_CT_ZONE,
  DNS_SERVICE_PORT,
  type Family,
  type InboundMode,
  loopbackHost,
  probeSetName,
  probeSnatAddress,
} from './constants.js';

export type Table = 'mangle' | 'nat' | 'raw';
export type Hook = 'PREROUTING' | 'OUTPUT' | 'POSTROUTING';
export type ChainName = Hook | typeof CHAIN_PRERT | typeof CHAIN_OUTPUT | typeof CHAIN_POSTRT;

/** An address with its prefix length, optionally negated (`! -d 127.0.0.1/32`). */
export interface AddressMatch {
  address: string;
  prefix: number;
  negate?: boolean;
}

export type Match =
  /** `-m tcp` with an optional (negated) destination port. */
  | { kind: 'tcp'; dport?: number; negateDport?: boolean }
  /** `-m udp` with a destination or source port. */
  | { kind: 'udp'; dport?: number; sport?: number }
  | { kind: 'mark'; value: number; mask: number; negate?: boolean }
  | { kind: 'connmark'; value: number; mask: number }
  | { kind: 'ctstate'; states: readonly ('RELATED' | 'ESTABLISHED')[] }
  /** The packet comes from a local socket (kubelet), not forwarded. */
  | { kind: 'socket-exists' }
  | { kind: 'set-dst'; set: string };

export type Target =
  | { kind: 'accept' }
  | { kind: 'jump'; chain: ChainName }
  | { kind: 'connmark-set'; value: number; mask: number }
  | { kind: 'connmark-restore'; nfmask: number; ctmask: number }
  | { kind: 'tproxy'; port: number; mark: number; mask: number }
  | { kind: 'redirect'; port: number }
  | { kind: 'snat'; to: string }
  /** `-j CT --zone N`: the packet's connection is tracked in conntrack zone N. */
  | { kind: 'ct-zone'; zone: number };

export interface Rule {
  table: Table;
  chain: ChainName;
  source?: AddressMatch;
  destination?: AddressMatch;
  inInterface?: string;
  outInterface?: string;
  /** `! -o IF`: the packet leaves by any interface but `outInterface`. */
  negateOutInterface?: boolean;
  protocol?: 'tcp' | 'udp';
  matches: Match[];
  target: Target;
  /** Insert at the head of the chain instead of appending (the host POSTROUTING jump). */
  first?: boolean;
}

export interface Ruleset {
  family: Family;
  /** User chains per table, in declaration order. */
  chains: Record<Table, ChainName[]>;
  rules: Rule[];
}

export interface PodRulesetOptions {
  family: Family;
  inbound: InboundMode;
  /**
   * Istio's DNS capture: the pod's DNS (UDP and TCP port 53) goes to the proxy's DNS server on 15053, and the
   * proxy's own upstream queries get a conntrack zone of their own. Off, the ruleset is the seed's exactly.
   */
  dnsCapture?: boolean;
}

const notProxy: Match = { kind: 'mark', value: PROXY_MARK, mask: PROXY_MASK, negate: true };

/**
 * The in-pod ruleset. With `inbound: 'tproxy'` it is the seed's listing rule for rule; with
 * `'redirect'` inbound capture is a nat REDIRECT to 15006 (newer Istio) and 15008 is left alone.
 */
export function podRuleset({ family, inbound, dnsCapture = false }: PodRulesetOptions): Ruleset {
  const probe: AddressMatch = { address: probeSnatAddress(family), prefix: family === 'ipv4' ? 32 : 128 };
  const notLoopback: AddressMatch = {
    address: loopbackHost(family),
    prefix: family === 'ipv4' ? 32 : 128,
    negate: true,
  };
  const tproxyTo = (port: number): Target => ({ kind: 'tproxy', port, mark: TPROXY_MARK, mask: TPROXY_MASK });

  const mangle: Rule[] = [
    { table: 'mangle', chain: 'PREROUTING', matches: [], target: { kind: 'jump', chain: CHAIN_PRERT } },
    { table: 'mangle', chain: 'OUTPUT', matches: [], target: { kind: 'jump', chain: CHAIN_OUTPUT } },
    {
      table: 'mangle',
      chain: CHAIN_OUTPUT,
      matches: [{ kind: 'connmark', value: TPROXY_MARK, mask: TPROXY_MASK }],
      target: { kind: 'connmark-restore', nfmask: RESTORE_MASK, ctmask: RESTORE_MASK },
    },
    {
      table: 'mangle',
      chain: CHAIN_PRERT,
      matches: [{ kind: 'mark', value: PROXY_MARK, mask: PROXY_MASK }],
      target: { kind: 'connmark-set', value: TPROXY_MARK, mask: TPROXY_MASK },
    },
  ];
  const natOutput: Rule[] = [
    { table: 'nat', chain: 'OUTPUT', matches: [], target: { kind: 'jump', chain: CHAIN_OUTPUT } },
    {
      table: 'nat',
      chain: CHAIN_OUTPUT,
      destination: probe,
      protocol: 'tcp',
      matches: [{ kind: 'tcp' }],
      target: { kind: 'accept' },
    },
    ...(dnsCapture ? dnsRedirect(notLoopback) : []),
    {
      table: 'nat',
      chain: CHAIN_OUTPUT,
      protocol: 'tcp',
      matches: [{ kind: 'mark', value: TPROXY_MARK, mask: TPROXY_MASK }],
      target: { kind: 'accept' },
    },
    {
      table: 'nat',
      chain: CHAIN_OUTPUT,
      destination: notLoopback,
      outInterface: 'lo',
      matches: [],
      target: { kind: 'accept' },
    },
    {
      table: 'nat',
      chain: CHAIN_OUTPUT,
      destination: notLoopback,
      protocol: 'tcp',
      matches: [notProxy],
      target: { kind: 'redirect', port: OUTBOUND_PORT },
    },
  ];

  if (inbound === 'tproxy') {
    const rules: Rule[] = [
      ...mangle,
      {
        table: 'mangle',
        chain: CHAIN_PRERT,
        source: probe,
        protocol: 'tcp',
        matches: [{ kind: 'tcp' }],
        target: { kind: 'accept' },
      },
      {
        table: 'mangle',
        chain: CHAIN_PRERT,
        destination: notLoopback,
        inInterface: 'lo',
        protocol: 'tcp',
        matches: [],
        target: { kind: 'accept' },
      },
      {
        table: 'mangle',
        chain: CHAIN_PRERT,
        protocol: 'tcp',
        matches: [{ kind: 'tcp', dport: INBOUND_HBONE_PORT }, notProxy],
        target: tproxyTo(INBOUND_HBONE_PORT),
      },
      {
        table: 'mangle',
        chain: CHAIN_PRERT,
        protocol: 'tcp',
        matches: [{ kind: 'ctstate', states: ['RELATED', 'ESTABLISHED'] }],
        target: { kind: 'accept' },
      },
      {
        table: 'mangle',
        chain: CHAIN_PRERT,
        destination: notLoopback,
        protocol: 'tcp',
        matches: [notProxy],
        target: tproxyTo(INBOUND_PLAINTEXT_PORT),
      },
      ...natOutput,
    ];
    if (dnsCapture) rules.push(...dnsConntrackZone());
    return {
      family,
      chains: { mangle: [CHAIN_OUTPUT, CHAIN_PRERT], nat: [CHAIN_OUTPUT], raw: dnsCapture ? RAW_CHAINS : [] },
      rules,
    };
  }

  const rules: Rule[] = [
    ...mangle,
    { table: 'nat', chain: 'PREROUTING', matches: [], target: { kind: 'jump', chain: CHAIN_PRERT } },
    {
      table: 'nat',
      chain: CHAIN_PRERT,
      source: probe,
      protocol: 'tcp',
      matches: [{ kind: 'tcp' }],
      target: { kind: 'accept' },
    },
    {
      table: 'nat',
      chain: CHAIN_PRERT,
      destination: notLoopback,
      protocol: 'tcp',
      matches: [{ kind: 'tcp', dport: INBOUND_HBONE_PORT, negateDport: true }, notProxy],
      target: { kind: 'redirect', port: INBOUND_PLAINTEXT_PORT },
    },
    ...natOutput,
    ...(dnsCapture ? dnsConntrackZone() : []),
  ];
  return {
    family,
    chains: {
      mangle: [CHAIN_OUTPUT, CHAIN_PRERT],
      nat: [CHAIN_OUTPUT, CHAIN_PRERT],
      raw: dnsCapture ? RAW_CHAINS : [],
    },
    rules,
  };
}

const RAW_CHAINS: ChainName[] = [CHAIN_OUTPUT, CHAIN_PRERT];

/**
 * DNS from the app to the proxy's 15053 (istio-cni's rules): UDP leaving by any interface but lo (a
 * resolver on the pod's own loopback is left alone), TCP to anything but localhost; the proxy's own
 * queries carry its mark and go out untouched.
 */
function dnsRedirect(notLoopback: AddressMatch): Rule[] {
  return [
    {
      table: 'nat',
      chain: CHAIN_OUTPUT,
      outInterface: 'lo',
      negateOutInterface: true,
      protocol: 'udp',
      matches: [notProxy, { kind: 'udp', dport: DNS_SERVICE_PORT }],
      target: { kind: 'redirect', port: DNS_PORT },
    },
    {
      table: 'nat',
      chain: CHAIN_OUTPUT,
      destination: notLoopback,
      protocol: 'tcp',
      matches: [{ kind: 'tcp', dport: DNS_SERVICE_PORT }, notProxy],
      target: { kind: 'redirect', port: DNS_PORT },
    },
  ];
}

/** The proxy's upstream DNS queries and their answers are tracked in a zone of their own (raw table). */
function dnsConntrackZone(): Rule[] {
  return [
    { table: 'raw', chain: 'PREROUTING', matches: [], target: { kind: 'jump', chain: CHAIN_PRERT } },
    { table: 'raw', chain: 'OUTPUT', matches: [], target: { kind: 'jump', chain: CHAIN_OUTPUT } },
    {
      table: 'raw',
      chain: CHAIN_OUTPUT,
      protocol: 'udp',
      matches: [
        { kind: 'mark', value: PROXY_MARK, mask: PROXY_MASK },
        { kind: 'udp', dport: DNS_SERVICE_PORT },
      ],
      target: { kind: 'ct-zone', zone: DNS_CT_ZONE },
    },
    {
      table: 'raw',
      chain: CHAIN_PRERT,
      protocol: 'udp',
      matches: [notProxy, { kind: 'udp', sport: DNS_SERVICE_PORT }],
      target: { kind: 'ct-zone', zone: DNS_CT_ZONE },
    },
  ];
}

/** Node-side rule: TCP from local sockets (kubelet) to enrolled pod IPs leaves with the probe source. */
export function hostProbeRuleset(family: Family): Ruleset {
  return {
    family,
    chains: { mangle: [], nat: [CHAIN_POSTRT], raw: [] },
    rules: [
      {
        table: 'nat',
        chain: 'POSTROUTING',
        matches: [],
        target: { kind: 'jump', chain: CHAIN_POSTRT },
        first: true,
      },
      {
        table: 'nat',
        chain: CHAIN_POSTRT,
        protocol: 'tcp',
        matches: [{ kind: 'socket-exists' }, { kind: 'set-dst', set: probeSetName(family) }],
        target: { kind: 'snat', to: probeSnatAddress(family) },
      },
    ],
  };
}
