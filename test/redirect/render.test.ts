import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { renderRestore } from '../../src/redirect/iptables-render.js';
import { diffState, parseSave, removalText, replaceText } from '../../src/redirect/iptables-state.js';
import { hostProbeRuleset, podRuleset } from '../../src/redirect/model.js';
import { parseNftListing } from '../../src/redirect/nft-backend.js';
import { renderNft, renderNftRemoval } from '../../src/redirect/nft-render.js';

// Compiled tests live in <dist>/test/redirect; the golden files stay in the source tree.
const golden = (name: string) =>
  readFileSync(new URL(`../../../test/redirect/golden/${name}`, import.meta.url), 'utf8');

describe('golden: iptables-restore input', () => {
  for (const inbound of ['tproxy', 'redirect'] as const) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      it(`${inbound} ${family}`, () => {
        assert.equal(
          renderRestore(podRuleset({ family, inbound })),
          golden(`iptables-${inbound}-${family}.rules`),
        );
      });
      it(`${inbound} ${family} with DNS capture`, () => {
        assert.equal(
          renderRestore(podRuleset({ family, inbound, dnsCapture: true })),
          golden(`iptables-${inbound}-${family}-dns.rules`),
        );
      });
    }
  }
  for (const family of ['ipv4', 'ipv6'] as const) {
    it(`host probe ${family}`, () => {
      assert.equal(renderRestore(hostProbeRuleset(family)), golden(`hostprobe-${family}.rules`));
    });
  }
});

describe('golden: nft -f input', () => {
  for (const inbound of ['tproxy', 'redirect'] as const) {
    it(`${inbound} ipv4`, () => {
      assert.equal(
        renderNft([podRuleset({ family: 'ipv4', inbound })]),
        golden(`nftables-${inbound}-ipv4.nft`),
      );
    });
    it(`${inbound} dual stack`, () => {
      const rulesets = (['ipv4', 'ipv6'] as const).map((family) => podRuleset({ family, inbound }));
      assert.equal(renderNft(rulesets), golden(`nftables-${inbound}-dual.nft`));
    });
    it(`${inbound} ipv4 and dual stack with DNS capture`, () => {
      assert.equal(
        renderNft([podRuleset({ family: 'ipv4', inbound, dnsCapture: true })]),
        golden(`nftables-${inbound}-ipv4-dns.nft`),
      );
      const rulesets = (['ipv4', 'ipv6'] as const).map((family) =>
        podRuleset({ family, inbound, dnsCapture: true }),
      );
      assert.equal(renderNft(rulesets), golden(`nftables-${inbound}-dual-dns.nft`));
    });
  }
  it('removal adds then deletes each table so it works whether or not they exist', () => {
    assert.equal(
      renderNftRemoval(),
      [
        'add table inet istio-ambient-mangle',
        'delete table inet istio-ambient-mangle',
        'add table inet istio-ambient-nat',
        'delete table inet istio-ambient-nat',
        'add table inet istio-ambient-raw',
        'delete table inet istio-ambient-raw',
        '',
      ].join('\n'),
    );
  });
});

/** The seed's rule lines, per table, from the seed's own iptables-save listing. */
function seedLines(): string[] {
  return golden('seed-iptables-save.txt')
    .split('\n')
    .filter((l) => l.startsWith('-A ') || l.startsWith('*'));
}

describe('iptables-save state', () => {
  const seed = parseSave(golden('seed-iptables-save.txt'));
  const tproxy = podRuleset({ family: 'ipv4', inbound: 'tproxy' });

  it('the seed listing is exactly the default ruleset (nothing missing, nothing unexpected)', () => {
    assert.deepEqual(diffState(tproxy, seed), { missing: [], unexpected: [] });
    assert.equal(seedLines().filter((l) => l.startsWith('-A ')).length, tproxy.rules.length);
  });

  it('with DNS capture off the ruleset is the seed listing line for line, in order', () => {
    const off = renderRestore(podRuleset({ family: 'ipv4', inbound: 'tproxy', dnsCapture: false }));
    assert.deepEqual(
      off.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith('*')),
      seedLines(),
    );
  });

  it("with DNS capture on it is the seed plus Istio's six DNS rules, and the seed listing lacks them", () => {
    const on = podRuleset({ family: 'ipv4', inbound: 'tproxy', dnsCapture: true });
    const d = diffState(on, seed);
    assert.deepEqual(d.unexpected, []);
    assert.deepEqual(d.missing, [
      'nat: -A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-ports 15053',
      'nat: -A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15053',
      'raw: :ISTIO_OUTPUT',
      'raw: :ISTIO_PRERT',
      'raw: -A PREROUTING -j ISTIO_PRERT',
      'raw: -A OUTPUT -j ISTIO_OUTPUT',
      'raw: -A ISTIO_OUTPUT -p udp -m mark --mark 0x539/0xfff -m udp --dport 53 -j CT --zone 1',
      'raw: -A ISTIO_PRERT -p udp -m mark ! --mark 0x539/0xfff -m udp --sport 53 -j CT --zone 1',
    ]);
    // And a pod that has them while capture is off is reported, so a switch never goes unnoticed.
    const withDns = parseSave(renderRestore(on));
    assert.equal(diffState(tproxy, withDns).unexpected.length, 8);
  });

  it('reports a deleted rule as missing and a foreign one in ISTIO_PRERT as unexpected', () => {
    const tampered = golden('seed-iptables-save.txt')
      .replace('-A ISTIO_PRERT -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n', '')
      .replace(
        '-A PREROUTING -j ISTIO_PRERT\n',
        '-A PREROUTING -j ISTIO_PRERT\n-A ISTIO_PRERT -s 10.1.1.1/32 -j ACCEPT\n',
      );
    assert.deepEqual(diffState(tproxy, parseSave(tampered)), {
      missing: ['mangle: -A ISTIO_PRERT -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'],
      unexpected: ['mangle: -A ISTIO_PRERT -s 10.1.1.1/32 -j ACCEPT'],
    });
  });

  it('reports a foreign jump into our chain and a reordered chain', () => {
    const text = golden('seed-iptables-save.txt')
      .replace(
        '-A OUTPUT -j ISTIO_OUTPUT\n-A ISTIO_OUTPUT -d',
        '-A OUTPUT -j ISTIO_OUTPUT\n-A INPUT -j ISTIO_OUTPUT\n-A ISTIO_OUTPUT -d',
      )
      .replace(
        '-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT\n-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT\n',
        '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT\n-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT\n',
      );
    const d = diffState(tproxy, parseSave(text));
    assert.deepEqual(d.unexpected, ['nat: -A INPUT -j ISTIO_OUTPUT']);
    assert.deepEqual(d.missing, []);
    const reordered = diffState(tproxy, parseSave(text.replace('-A INPUT -j ISTIO_OUTPUT\n', '')));
    assert.equal(reordered.missing.length, 4);
    assert.ok(reordered.missing.every((l) => l.startsWith('nat: -A ISTIO_OUTPUT')));
  });

  it('removal takes out jumps into ISTIO_* (ours and foreign) and the chains, nothing else', () => {
    const text = golden('seed-iptables-save.txt').replace(
      '-A PREROUTING -j ISTIO_PRERT\n',
      '-A PREROUTING -s 10.9.9.9/32 -j ACCEPT\n-A PREROUTING -j ISTIO_PRERT\n-A INPUT -j ISTIO_PRERT\n',
    );
    assert.equal(
      removalText(parseSave(text)),
      [
        '*mangle',
        '-D PREROUTING -j ISTIO_PRERT',
        '-D INPUT -j ISTIO_PRERT',
        '-D OUTPUT -j ISTIO_OUTPUT',
        '-F ISTIO_OUTPUT',
        '-F ISTIO_PRERT',
        '-X ISTIO_OUTPUT',
        '-X ISTIO_PRERT',
        'COMMIT',
        '*nat',
        '-D OUTPUT -j ISTIO_OUTPUT',
        '-F ISTIO_OUTPUT',
        '-X ISTIO_OUTPUT',
        'COMMIT',
        '',
      ].join('\n'),
    );
    assert.equal(removalText(parseSave('*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j ACCEPT\nCOMMIT\n')), '');
  });

  it('replacement empties kept chains in the same commit and deletes chains no longer expected', () => {
    const text = replaceText(podRuleset({ family: 'ipv4', inbound: 'redirect' }), seed);
    const mangle = text.slice(text.indexOf('*mangle'), text.indexOf('COMMIT'));
    assert.match(
      mangle,
      /-D PREROUTING -j ISTIO_PRERT\n-D OUTPUT -j ISTIO_OUTPUT\n-F ISTIO_OUTPUT\n-F ISTIO_PRERT\n:ISTIO_OUTPUT/,
    );
    assert.doesNotMatch(mangle, /-X /);
    assert.match(
      text,
      /\*nat\n-D OUTPUT -j ISTIO_OUTPUT\n-F ISTIO_OUTPUT\n:ISTIO_OUTPUT - \[0:0\]\n:ISTIO_PRERT - \[0:0\]\n/,
    );
  });
});

describe('nft listing', () => {
  it('keeps table, chain and statement; drops counters, handles and braces', () => {
    const listing = [
      'table inet istio-ambient-nat { # handle 3',
      '\tchain output { # handle 1',
      '\t\ttype nat hook output priority -100; policy accept;',
      '\t\tcounter packets 4 bytes 240 jump istio-output # handle 5',
      '\t}',
      '',
      '\tchain istio-output { # handle 2',
      '\t\tmeta l4proto tcp meta mark & 0x00000fff == 0x00000111 counter packets 0 bytes 0 accept # handle 7',
      '\t}',
      '}',
    ].join('\n');
    assert.deepEqual(parseNftListing(listing), [
      'istio-ambient-nat output: type nat hook output priority -100; policy accept;',
      'istio-ambient-nat output: jump istio-output',
      'istio-ambient-nat istio-output: meta l4proto tcp meta mark & 0x00000fff == 0x00000111 accept',
    ]);
  });
});
