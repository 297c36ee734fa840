/**
 * Throw-away network namespaces for root tests. Every name starts with `ambit-t-` plus a random
 * suffix, so tests can run in parallel; each test removes what it made (also when it fails) and the
 * test runner sweeps leftovers at the end.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs a command inside a named netns. */
export function nsRun(ns: string, cmd: string, args: string[], input?: string): string {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], input);
}

/** Set by scripts/run-tests.mjs so its final sweep touches only this run's namespaces. */
const RUN_ID = process.env['AMBIT_TEST_RUN'] ?? '';

export function uniqueName(kind = 't'): string {
  return `ambit-${kind}-${RUN_ID}${randomBytes(3).toString('hex')}`;
}

/** A random /24 inside 10.64.0.0/10 for addresses that live only inside the test's namespaces. */
export function uniqueSubnet(): { prefix: string; cidr: string; host(n: number): string } {
  const b = randomBytes(2);
  const prefix = `10.${64 + (b[0]! % 64)}.${b[1]!}`;
  return { prefix, cidr: `${prefix}.0/24`, host: (n) => `${prefix}.${n}` };
}

/** Node and pod ranges for a throw-away lab: two distinct random /24s, nodes' pod blocks of /26. */
export function uniqueLabCidrs(): { nodeCidr: string; podCidr: string; nodeMask: number } {
  const pods = uniqueSubnet();
  let nodes = uniqueSubnet();
  while (nodes.cidr === pods.cidr) nodes = uniqueSubnet();
  return { nodeCidr: nodes.cidr, podCidr: pods.cidr, nodeMask: 26 };
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export class TestNetns {
  readonly name: string;
  readonly path: string;

  constructor(name = uniqueName()) {
    this.name = name;
    this.path = `/var/run/netns/${name}`;
    run('ip', ['netns', 'add', name]);
    this.exec('ip', ['link', 'set', 'lo', 'up']);
  }

  exec(cmd: string, args: string[], input?: string): string {
    return nsRun(this.name, cmd, args, input);
  }

  remove(): void {
    try {
      run('ip', ['netns', 'del', this.name]);
    } catch {}
  }
}

/**
 * Two namespaces joined by a veth pair with addresses from a fresh subnet:
 * `a` has .1, `b` has .2. Link names are ≤15 chars, prefixed `ambit`.
 */
export class VethPair {
  readonly a: TestNetns;
  readonly b: TestNetns;
  readonly addrA: string;
  readonly addrB: string;

  constructor() {
    this.a = new TestNetns();
    this.b = new TestNetns();
    const subnet = uniqueSubnet();
    this.addrA = subnet.host(1);
    this.addrB = subnet.host(2);
    const suffix = randomBytes(3).toString('hex');
    const ifA = `ambit${suffix}a`;
    const ifB = `ambit${suffix}b`;
    run('ip', [
      'link',
      'add',
      ifA,
      'netns',
      this.a.name,
      'type',
      'veth',
      'peer',
      'name',
      ifB,
      'netns',
      this.b.name,
    ]);
    this.a.exec('ip', ['addr', 'add', `${this.addrA}/24`, 'dev', ifA]);
    this.a.exec('ip', ['link', 'set', ifA, 'up']);
    this.b.exec('ip', ['addr', 'add', `${this.addrB}/24`, 'dev', ifB]);
    this.b.exec('ip', ['link', 'set', ifB, 'up']);
  }

  remove(): void {
    this.a.remove();
    this.b.remove();
  }
}

/** Number of open fds of this process (read in-process: a child's /proc/self would be the child's). */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
