/** apply / verify / remove / reconcile against real iptables in real namespaces, and bad input. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { errorCode } from '../../../src/errors.js';
import { findTool } from '../../../src/redirect/exec.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { xtables } from '../../../src/redirect/xtables.js';
import { TestNetns } from '../../helpers/netns.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function pod(ipv6 = false): TestNetns {
  const ns = new TestNetns();
  cleanups.push(() => ns.remove());
  // A veth with both ends in the pod: an interface with an address, like a pod's eth0.
  ns.exec('ip', ['link', 'add', 'ambit-eth0', 'type', 'veth', 'peer', 'name', 'ambit-eth1']);
  ns.exec('ip', ['addr', 'add', '10.70.0.5/24', 'dev', 'ambit-eth0']);
  if (ipv6) ns.exec('ip', ['addr', 'add', 'fd00:70::5/64', 'dev', 'ambit-eth0', 'nodad']);
  ns.exec('ip', ['link', 'set', 'ambit-eth0', 'up']);
  return ns;
}

/** Full state a removal must restore: every table of both families, and the policy rules. */
function snapshot(ns: TestNetns): string {
  const strip = (t: string) => t.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, '[0:0]');
  return [
    strip(ns.exec('iptables-save', [])),
    strip(ns.exec('ip6tables-save', [])),
    ns.exec('ip', ['rule']),
    ns.exec('ip', ['-6', 'rule']),
  ].join('\n');
}

/**
 * Rules and chains of both families plus policy rules and table 100. iptables-nft keeps a table
 * once created, even emptied, so a fresh pod's "nothing" is compared without empty tables.
 */
function rulesOnly(ns: TestNetns): string {
  const keep = (t: string) =>
    t
      .split('\n')
      .filter((l) => l.startsWith('-A ') || (l.startsWith(':') && !/^:[A-Z]+ (ACCEPT|DROP)/.test(l)));
  return [
    ...keep(ns.exec('iptables-save', [])),
    ...keep(ns.exec('ip6tables-save', [])),
    ns.exec('ip', ['rule']),
    ns.exec('ip', ['-6', 'rule']),
    ns.exec('ip', ['route', 'show', 'table', 'all']),
  ].join('\n');
}

/** A PATH holding symlinks to the real tools, minus `without`, plus failing stand-ins for `failing`. */
function toolDir(without: string[], failing: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-redirect-path-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const place = { netns: null, path: process.env.PATH ?? '' };
  const tools = ['nsenter', 'ip', 'cat', 'nft', 'unshare', 'sh', 'iptables-legacy-save'];
  for (const f of ['iptables', 'ip6tables']) tools.push(`${f}-nft-save`, `${f}-nft-restore`, `${f}-nft`);
  for (const tool of tools) {
    if (without.includes(tool)) continue;
    if (failing.includes(tool)) {
      writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool}: injected failure" >&2\nexit 1\n`);
      chmodSync(join(dir, tool), 0o755);
      continue;
    }
    const real = findTool(place, tool);
    if (real) symlinkSync(real, join(dir, tool));
  }
  return dir;
}

// The tests read rules back with `iptables-save` (the nft alternative here), so pin the variant
// rather than depend on what the test machine's own netns holds; detection has its own test.
const NFT = { xtables: xtables('nft') };
const env = { ...process.env, AMBIT_IPTABLES: 'nft' };

describe('redirect operations (iptables)', () => {
  it('apply twice leaves one set of rules; verify is clean', async () => {
    const ns = pod();
    const r = createRedirector(NFT);
    assert.equal(await r.apply(ns.path), 'applied');
    const first = snapshot(ns);
    assert.equal(await r.apply(ns.path), 'unchanged');
    assert.equal(snapshot(ns), first);
    assert.equal(
      ns
        .exec('iptables-save', [])
        .split('\n')
        .filter((l) => l.startsWith('-A ')).length,
      14,
    );
    assert.equal(
      ns
        .exec('ip', ['rule'])
        .split('\n')
        .filter((l) => l.includes('fwmark 0x111/0xfff')).length,
      1,
    );
    assert.deepEqual(await r.verify(ns.path), { ok: true, families: ['ipv4'], missing: [], unexpected: [] });
  });

  it('remove restores the pre-apply iptables-save and ip rule output, foreign rules untouched', async () => {
    const ns = pod();
    ns.exec('iptables', ['-t', 'mangle', '-A', 'PREROUTING', '-s', '10.70.9.9', '-j', 'ACCEPT']);
    ns.exec('iptables', ['-t', 'nat', '-N', 'OTHER']);
    ns.exec('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-j', 'OTHER']);
    ns.exec('iptables', ['-t', 'filter', '-A', 'INPUT', '-p', 'udp', '-j', 'ACCEPT']);
    ns.exec('ip', ['rule', 'add', 'fwmark', '0x7', 'lookup', '200', 'pref', '1000']);
    const before = snapshot(ns);
    const r = createRedirector(NFT);
    await r.apply(ns.path);
    assert.notEqual(snapshot(ns), before);
    assert.equal(await r.remove(ns.path), 'removed');
    assert.equal(snapshot(ns), before);
    assert.equal(await r.remove(ns.path), 'removed');
    assert.equal(snapshot(ns), before);
  });

  it('reconcile repairs a deleted rule and removes a foreign rule and a foreign jump; apply refuses drift', async () => {
    const ns = pod();
    const r = createRedirector(NFT);
    await r.apply(ns.path);
    ns.exec('iptables', [
      '-t',
      'mangle',
      '-D',
      'ISTIO_PRERT',
      '-p',
      'tcp',
      '-m',
      'conntrack',
      '--ctstate',
      'RELATED,ESTABLISHED',
      '-j',
      'ACCEPT',
    ]);
    ns.exec('iptables', ['-t', 'mangle', '-I', 'ISTIO_PRERT', '1', '-s', '10.70.8.8/32', '-j', 'ACCEPT']);
    ns.exec('iptables', ['-t', 'mangle', '-A', 'FORWARD', '-j', 'ISTIO_OUTPUT']);
    ns.exec('iptables', ['-t', 'mangle', '-A', 'INPUT', '-s', '10.70.7.7/32', '-j', 'ACCEPT']);
    const v = await r.verify(ns.path);
    assert.equal(v.ok, false);
    assert.deepEqual(v.missing, [
      'mangle: -A ISTIO_PRERT -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]);
    assert.deepEqual(v.unexpected.sort(), [
      'mangle: -A FORWARD -j ISTIO_OUTPUT',
      'mangle: -A ISTIO_PRERT -s 10.70.8.8/32 -j ACCEPT',
    ]);
    await assert.rejects(
      r.apply(ns.path),
      (e) => errorCode(e) === 'ERR_REDIRECT_DRIFT' && /reconcile/.test(String(e)),
    );
    assert.equal(await r.reconcile(ns.path), 'repaired');
    assert.deepEqual((await r.verify(ns.path)).ok, true);
    const mangle = ns.exec('iptables-save', ['-t', 'mangle']);
    assert.match(mangle, /^-A INPUT -s 10\.70\.7\.7\/32 -j ACCEPT$/m);
    assert.doesNotMatch(mangle, /^-A FORWARD -j ISTIO_OUTPUT$/m);
    assert.equal(await r.reconcile(ns.path), 'unchanged');
  });

  it('IPv6: a pod with an IPv6 address gets ip6tables rules and the ::/0 local route; disabled lo gets none', async () => {
    const ns = pod(true);
    const r = createRedirector(NFT);
    await r.apply(ns.path);
    const v6 = ns.exec('ip6tables-save', []);
    assert.match(
      v6,
      /^-A ISTIO_PRERT ! -d ::1\/128 -p tcp -m mark ! --mark 0x539\/0xfff -j TPROXY --on-port 15006 --on-ip :: --tproxy-mark 0x111\/0xfff$/m,
    );
    assert.match(ns.exec('ip', ['-6', 'rule']), /32764:\s+from all fwmark 0x111\/0xfff lookup 100/);
    assert.match(ns.exec('ip', ['-6', 'route', 'show', 'table', '100']), /^local default dev lo/m);
    assert.deepEqual((await r.verify(ns.path)).families, ['ipv4', 'ipv6']);
    await r.remove(ns.path);
    assert.doesNotMatch(ns.exec('ip6tables-save', []), /ISTIO/);

    const off = pod(true);
    off.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.lo.disable_ipv6=1']);
    await r.apply(off.path);
    assert.doesNotMatch(off.exec('ip6tables-save', []), /ISTIO/);
    assert.deepEqual((await r.verify(off.path)).families, ['ipv4']);
  });

  it('uses the iptables variant the node uses (legacy node -> legacy rules in the pod)', async () => {
    const node = new TestNetns();
    cleanups.push(() => node.remove());
    node.exec('iptables-legacy', ['-t', 'filter', '-A', 'INPUT', '-s', '10.70.6.6', '-j', 'ACCEPT']);
    const ns = pod();
    await createRedirector({ nodeNetns: node.path }).apply(ns.path);
    assert.match(ns.exec('iptables-legacy-save', []), /^-A ISTIO_OUTPUT .*REDIRECT --to-ports 15001$/m);
    assert.doesNotMatch(ns.exec('iptables-nft-save', []), /ISTIO/);
    await createRedirector({ nodeNetns: node.path }).remove(ns.path);
    assert.doesNotMatch(ns.exec('iptables-legacy-save', []), /ISTIO/);
  });
});

describe('redirect bad input', () => {
  it('a netns that does not exist: one clear error naming the fix', async () => {
    await assert.rejects(createRedirector(NFT).apply('/var/run/netns/ambit-t-nonexistent'), (e) => {
      assert.equal(errorCode(e), 'ERR_REDIRECT_NETNS_NOT_FOUND');
      assert.match(String(e), /ambit-t-nonexistent does not exist: pass the path of a live pod netns/);
      return true;
    });
  });

  it('a missing iptables binary: clear error, nothing applied', async () => {
    const ns = pod();
    const before = rulesOnly(ns);
    const path = toolDir(['iptables-nft-save', 'iptables-nft-restore']);
    await assert.rejects(createRedirector({ path, xtables: xtables('nft') }).apply(ns.path), (e) => {
      assert.equal(errorCode(e), 'ERR_REDIRECT_TOOL_MISSING');
      assert.match(String(e), /iptables-nft-save, iptables-nft-restore; install them/);
      return true;
    });
    assert.equal(rulesOnly(ns), before);
  });

  it('a failure half way (IPv6 restore fails after IPv4 applied) is rolled back', async () => {
    const ns = pod(true);
    const before = rulesOnly(ns);
    const path = toolDir([], ['ip6tables-nft-restore']);
    await assert.rejects(createRedirector({ path }).apply(ns.path), (e) => {
      assert.equal(errorCode(e), 'ERR_REDIRECT_COMMAND_FAILED');
      assert.match(String(e), /ip6tables-nft-restore: injected failure/);
      return true;
    });
    assert.equal(rulesOnly(ns), before);
  });

  it('an unknown option is rejected before anything runs', () => {
    assert.throws(
      () => createRedirector({ backend: 'iptables', colour: 'red' } as never),
      (e) =>
        errorCode(e) === 'ERR_REDIRECT_BAD_OPTION' && /unknown redirector option 'colour'/.test(String(e)),
    );
    assert.throws(
      () => createRedirector({ backend: 'pf' as never }),
      /use --backend iptables or --backend nftables/,
    );
  });
});

describe('ambit redirect (CLI)', () => {
  const main = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
  const cli = (...args: string[]) =>
    spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { main } from ${JSON.stringify(main)}; process.exitCode = await main(['redirect', ...process.argv.slice(1)]);`,
        '--',
        ...args,
      ],
      { encoding: 'utf8', env },
    );

  it('apply, verify (0), tamper, verify prints a diff and exits 1, reconcile, remove', () => {
    const ns = pod();
    assert.equal(cli('apply', '--netns', ns.path).status, 0);
    assert.equal(cli('verify', '--netns', ns.path).status, 0);
    ns.exec('iptables', [
      '-t',
      'nat',
      '-D',
      'ISTIO_OUTPUT',
      '-p',
      'tcp',
      '-m',
      'mark',
      '--mark',
      '0x111/0xfff',
      '-j',
      'ACCEPT',
    ]);
    const v = cli('verify', '--netns', ns.path);
    assert.equal(v.status, 1);
    assert.match(v.stdout, /^-nat: -A ISTIO_OUTPUT -p tcp -m mark --mark 0x111\/0xfff -j ACCEPT$/m);
    assert.equal(cli('reconcile', '--netns', ns.path).status, 0);
    assert.equal(cli('verify', '--netns', ns.path).status, 0);
    assert.equal(cli('remove', '--netns', ns.path).status, 0);
    assert.doesNotMatch(ns.exec('iptables-save', []), /ISTIO/);
  });

  it('usage errors exit 2 with a message; --help exits 0', () => {
    const unknown = cli('apply', '--netns', '/x', '--colour', 'red');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /^ambit redirect: unknown option '--colour'$/m);
    const badBackend = cli('apply', '--netns', '/x', '--backend', 'pf');
    assert.equal(badBackend.status, 2);
    assert.match(badBackend.stderr, /use --backend iptables or --backend nftables/);
    assert.equal(cli('frobnicate', '--netns', '/x').status, 2);
    assert.equal(cli('apply').status, 2);
    const help = cli('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Usage: ambit redirect apply\|verify\|remove\|reconcile/);
  });

  it('a missing netns exits 1 with the error code', () => {
    const r = cli('apply', '--netns', '/var/run/netns/ambit-t-missing');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /does not exist.*\[ERR_REDIRECT_NETNS_NOT_FOUND\]/);
  });
});
