/**
 * DNS capture in real netns: the switch adds exactly Istio's DNS rules, turning it off gives back the
 * seed's ruleset, and removal takes the raw table's chains out too (iptables and nftables).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { errorCode } from '../../../src/errors.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { xtables } from '../../../src/redirect/xtables.js';
import { TestNetns } from '../../helpers/netns.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

const golden = (name: string) =>
  readFileSync(new URL(`../../../../test/redirect/golden/${name}`, import.meta.url), 'utf8');

function pod(): TestNetns {
  const ns = new TestNetns();
  cleanups.push(() => ns.remove());
  ns.exec('ip', ['link', 'add', 'ambit-eth0', 'type', 'veth', 'peer', 'name', 'ambit-eth1']);
  ns.exec('ip', ['addr', 'add', '10.70.0.5/24', 'dev', 'ambit-eth0']);
  ns.exec('ip', ['link', 'set', 'ambit-eth0', 'up']);
  return ns;
}

/** Table headers and rule lines of iptables-save, in its order. */
function ruleLines(ns: TestNetns, table: string): string[] {
  return ns
    .exec('iptables-save', ['-t', table])
    .split('\n')
    .filter((l) => l.startsWith('-A '));
}

/** The golden restore input's rule lines of one table. */
function goldenLines(name: string, table: string): string[] {
  const text = golden(name);
  const start = text.indexOf(`*${table}\n`);
  if (start < 0) return [];
  return text
    .slice(start, text.indexOf('COMMIT', start))
    .split('\n')
    .filter((l) => l.startsWith('-A '));
}

const NFT = { xtables: xtables('nft') };

describe('DNS capture rules (iptables)', () => {
  it('on: the kernel holds exactly the DNS golden; verify clean; a second apply changes nothing', async () => {
    const ns = pod();
    const r = createRedirector({ ...NFT, dnsCapture: true });
    assert.equal(await r.apply(ns.path), 'applied');
    for (const table of ['mangle', 'nat', 'raw'])
      assert.deepEqual(ruleLines(ns, table), goldenLines('iptables-tproxy-ipv4-dns.rules', table), table);
    assert.equal(await r.apply(ns.path), 'unchanged');
    assert.deepEqual(await r.verify(ns.path), { ok: true, families: ['ipv4'], missing: [], unexpected: [] });
  });

  it('switching: apply refuses the other setting, reconcile converts both ways; off is the seed again', async () => {
    const ns = pod();
    const off = createRedirector(NFT);
    const on = createRedirector({ ...NFT, dnsCapture: true });
    await off.apply(ns.path);
    const seed = ['mangle', 'nat', 'raw'].map((t) => ruleLines(ns, t));
    assert.deepEqual(seed[2], []);
    await assert.rejects(on.apply(ns.path), (e) => errorCode(e) === 'ERR_REDIRECT_DRIFT');
    assert.equal((await on.verify(ns.path)).missing.length, 8);
    assert.equal(await on.reconcile(ns.path), 'repaired');
    assert.equal((await on.verify(ns.path)).ok, true);
    assert.deepEqual((await off.verify(ns.path)).unexpected.length, 8);
    assert.equal(await off.reconcile(ns.path), 'repaired');
    assert.deepEqual(
      ['mangle', 'nat', 'raw'].map((t) => ruleLines(ns, t)),
      seed,
    );
    assert.doesNotMatch(ns.exec('iptables-save', ['-t', 'raw']), /ISTIO_/);
  });

  it('remove takes out the raw chains and jumps as well', async () => {
    const ns = pod();
    const r = createRedirector({ ...NFT, dnsCapture: true });
    await r.apply(ns.path);
    assert.match(ns.exec('iptables-save', ['-t', 'raw']), /CT --zone 1/);
    await r.remove(ns.path);
    for (const table of ['mangle', 'nat', 'raw'])
      assert.doesNotMatch(ns.exec('iptables-save', ['-t', table]), /ISTIO_/, table);
  });
});

describe('DNS capture rules (nftables)', () => {
  it('on: the raw table and the 15053 redirects are there; verify clean; off reconciles to no raw table', async () => {
    const ns = pod();
    const on = createRedirector({ backend: 'nftables', dnsCapture: true });
    const off = createRedirector({ backend: 'nftables' });
    assert.equal(await on.apply(ns.path), 'applied');
    const raw = ns.exec('nft', ['list', 'table', 'inet', 'istio-ambient-raw']);
    assert.match(raw, /udp dport 53 .*ct zone set 1/);
    assert.match(raw, /udp sport 53 .*ct zone set 1/);
    const nat = ns.exec('nft', ['list', 'table', 'inet', 'istio-ambient-nat']);
    assert.match(nat, /oifname != "lo" .*udp dport 53 .*redirect to :15053/);
    assert.match(nat, /tcp dport 53 .*redirect to :15053/);
    assert.equal((await on.verify(ns.path)).ok, true);
    assert.equal(await on.apply(ns.path), 'unchanged');
    assert.equal((await off.verify(ns.path)).ok, false);
    assert.equal(await off.reconcile(ns.path), 'repaired');
    assert.doesNotMatch(ns.exec('nft', ['list', 'tables']), /istio-ambient-raw/);
    assert.doesNotMatch(ns.exec('nft', ['list', 'table', 'inet', 'istio-ambient-nat']), /15053/);
    await on.reconcile(ns.path);
    await on.remove(ns.path);
    assert.doesNotMatch(ns.exec('nft', ['list', 'tables']), /istio-ambient/);
  });
});
