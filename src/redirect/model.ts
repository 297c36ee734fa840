/**
 * The redirection rules as data: which packets each chain matches and what it does with them.
 * Backends (iptables, nftables) render the same model, so both capture exactly the same traffic.
 */

import {
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
  type Family,
  type InboundMode,
  loopbackHost,
  probeSetName,
  probeSnatAddress,
} from './constants.js';

export type Table = 'mangle' | 'nat';
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
  | { kind: 'snat'; to: string };

export interface Rule {
  table: Table;
  chain: ChainName;
  source?: AddressMatch;
  destination?: AddressMatch;
  inInterface?: string;
  outInterface?: string;
  protocol?: 'tcp';
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
}

const notProxy: Match = { kind: 'mark', value: PROXY_MARK, mask: PROXY_MASK, negate: true };

/**
 * The in-pod ruleset. With `inbound: 'tproxy'` it is the seed's listing rule for rule; with
 * `'redirect'` inbound capture is a nat REDIRECT to 15006 (newer Istio) and 15008 is left alone.
 */
export function podRuleset({ family, inbound }: PodRulesetOptions): Ruleset {
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
    return { family, chains: { mangle: [CHAIN_OUTPUT, CHAIN_PRERT], nat: [CHAIN_OUTPUT] }, rules };
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
  ];
  return { family, chains: { mangle: [CHAIN_OUTPUT, CHAIN_PRERT], nat: [CHAIN_OUTPUT, CHAIN_PRERT] }, rules };
}

/** Node-side rule: TCP from local sockets (kubelet) to enrolled pod IPs leaves with the probe source. */
export function hostProbeRuleset(family: Family): Ruleset {
  return {
    family,
    chains: { mangle: [], nat: [CHAIN_POSTRT] },
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
