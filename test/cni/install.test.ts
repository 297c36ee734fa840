import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CniInstaller, type InstallerOptions } from '../../src/cni/install/installer.js';
import { parseKubeconfig, renderPluginKubeconfig } from '../../src/cni/kubeconfig.js';

// Compiled tests live in <dist>/test/cni; the golden files stay in the source tree.
const golden = (name: string) =>
  readFileSync(new URL(`../../../test/cni/golden/${name}`, import.meta.url), 'utf8');
const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

let dir: string;
let conf: string;
let bin: string;
let run: string;
let options: InstallerOptions;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-cni-install-'));
  conf = join(dir, 'net.d');
  bin = join(dir, 'bin');
  run = join(dir, 'run');
  for (const d of [conf, bin, run]) mkdirSync(d);
  writeFileSync(join(dir, 'ambit-cni.bundle'), '#!/usr/bin/env node\n// plugin v1\n');
  options = {
    confDir: conf,
    binDirs: [bin],
    pluginBinary: join(dir, 'ambit-cni.bundle'),
    kubeTarget: () => ({ server: 'https://10.96.0.1:443', caPem: CA, token: 'sa-token-abc' }),
    agentRunDir: '/var/run/ambit',
    excludeNamespaces: ['kube-system'],
    podNamespace: 'istio-system',
    pluginLogLevel: 'info',
    enableAmbientDetectionRetry: false,
  };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Installer whose kubeconfig goes to the test's run dir while the config entry still names /var/run/ambit. */
function installer(extra: Partial<InstallerOptions> = {}) {
  return new CniInstaller({ ...options, kubeconfigPath: join(run, 'ambit-cni-kubeconfig'), ...extra });
}

describe('conflist splicing (goldens from §2.3)', () => {
  it('appends ambit-cni last to a .conflist, sorted keys, 2-space JSON, mode kept', () => {
    writeFileSync(join(conf, '10-list.conflist'), golden('list.conflist'), { mode: 0o644 });
    const written = installer().installOnce();
    assert.equal(written, join(conf, '10-list.conflist'));
    assert.equal(readFileSync(written, 'utf8'), golden('list.conflist.golden'));
    assert.equal(statSync(written).mode & 0o777, 0o644);
  });

  it('wraps a lone .conf into a .conflist and removes the .conf', () => {
    writeFileSync(join(conf, '10-bridge.conf'), golden('bridge.conf'), { mode: 0o600 });
    const written = installer().installOnce();
    assert.equal(written, join(conf, '10-bridge.conflist'));
    assert.equal(existsSync(join(conf, '10-bridge.conf')), false);
    assert.equal(readFileSync(written, 'utf8'), golden('bridge.conf.golden'));
    assert.equal(statSync(written).mode & 0o777, 0o600);
  });

  it('re-installing replaces an existing (stale) ambit-cni entry instead of adding a second', () => {
    const stale = JSON.parse(golden('list.conflist.golden'));
    stale.plugins[2].cni_agent_run_dir = '/old/dir';
    stale.plugins.splice(1, 0, stale.plugins.pop());
    writeFileSync(join(conf, '10-list.conflist'), JSON.stringify(stale));
    installer().installOnce();
    assert.equal(readFileSync(join(conf, '10-list.conflist'), 'utf8'), golden('list.conflist.golden'));
  });

  it('picks the lexicographically first valid file, skipping invalid ones', () => {
    writeFileSync(join(conf, '00-broken.conflist'), '{nope');
    writeFileSync(join(conf, '01-notype.conf'), '{"cniVersion":"1.0.0","name":"x"}');
    writeFileSync(join(conf, '05-list.conflist'), golden('list.conflist'));
    writeFileSync(join(conf, '20-other.conflist'), golden('list.conflist'));
    assert.equal(installer().installOnce(), join(conf, '05-list.conflist'));
    assert.equal(readFileSync(join(conf, '20-other.conflist'), 'utf8'), golden('list.conflist'));
  });

  it('without any valid config it fails with CNI_NO_PRIMARY_CONFIG', () => {
    writeFileSync(join(conf, '00-broken.conflist'), '{nope');
    assert.throws(() => installer().installOnce(), { code: 'CNI_NO_PRIMARY_CONFIG' });
  });

  it('cleanup restores the original list and the wrapped list, leaving other plugins and mode', () => {
    writeFileSync(join(conf, '10-list.conflist'), golden('list.conflist'), { mode: 0o640 });
    const i = installer();
    i.installOnce();
    i.cleanup();
    assert.equal(readFileSync(join(conf, '10-list.conflist'), 'utf8'), golden('list.conflist'));
    assert.equal(statSync(join(conf, '10-list.conflist')).mode & 0o777, 0o640);
    assert.equal(existsSync(join(bin, 'ambit-cni')), false);
    assert.equal(existsSync(join(run, 'ambit-cni-kubeconfig')), false);

    rmSync(join(conf, '10-list.conflist'));
    writeFileSync(join(conf, '10-bridge.conf'), golden('bridge.conf'));
    const j = installer();
    j.installOnce();
    j.cleanup();
    assert.equal(readFileSync(join(conf, '10-bridge.conflist'), 'utf8'), golden('bridge.conf.clean'));
  });
});

describe('binary and kubeconfig', () => {
  it('copies the plugin executable and writes the kubeconfig 0600 with the golden content', () => {
    writeFileSync(join(conf, '10-list.conflist'), golden('list.conflist'));
    installer().installOnce();
    const plugin = join(bin, 'ambit-cni');
    assert.equal(readFileSync(plugin, 'utf8'), readFileSync(options.pluginBinary, 'utf8'));
    assert.equal(statSync(plugin).mode & 0o777, 0o755);
    const kc = join(run, 'ambit-cni-kubeconfig');
    assert.equal(statSync(kc).mode & 0o777, 0o600);
    assert.equal(readFileSync(kc, 'utf8'), golden('kubeconfig-token.golden'));
    assert.deepEqual(parseKubeconfig(readFileSync(kc, 'utf8')), {
      server: 'https://10.96.0.1:443',
      caPem: CA,
      token: 'sa-token-abc',
    });
  });

  it('a run dir that does not exist yet is created for the kubeconfig', () => {
    writeFileSync(join(conf, '10-list.conflist'), golden('list.conflist'));
    installer({ kubeconfigPath: join(run, 'fresh', 'ambit-cni-kubeconfig') }).installOnce();
    assert.equal(statSync(join(run, 'fresh', 'ambit-cni-kubeconfig')).mode & 0o777, 0o600);
  });

  it('skip-TLS kubeconfig carries no CA; a plain-HTTP server round-trips', () => {
    const text = renderPluginKubeconfig({
      server: 'http://127.0.0.1:6443',
      token: 't',
      insecureSkipTlsVerify: true,
    });
    assert.match(text, /insecure-skip-tls-verify: true/);
    assert.doesNotMatch(text, /certificate-authority/);
    assert.deepEqual(parseKubeconfig(text), {
      server: 'http://127.0.0.1:6443',
      token: 't',
      insecureSkipTlsVerify: true,
    });
  });

  it('a kubeconfig without a usable current context is rejected with KUBECONFIG_INVALID', () => {
    assert.throws(() => parseKubeconfig('apiVersion: v1\nkind: Config\n'), { code: 'KUBECONFIG_INVALID' });
    assert.throws(() => parseKubeconfig('current-context: x\ncontexts: []\n'), {
      code: 'KUBECONFIG_INVALID',
      message: /context named 'x'/,
    });
  });

  it('an updated plugin bundle replaces the installed binary; leftovers of interrupted copies are removed', () => {
    writeFileSync(join(conf, '10-list.conflist'), golden('list.conflist'));
    writeFileSync(join(bin, 'ambit-cni.tmp.dead'), 'half');
    installer().installOnce();
    assert.equal(existsSync(join(bin, 'ambit-cni.tmp.dead')), false);
    writeFileSync(options.pluginBinary, '#!/usr/bin/env node\n// plugin v2\n');
    installer().installOnce();
    assert.match(readFileSync(join(bin, 'ambit-cni'), 'utf8'), /plugin v2/);
  });
});

describe('watch loop', () => {
  async function until(cond: () => boolean, what: string) {
    for (let i = 0; i < 200; i++) {
      if (cond()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`timed out waiting for ${what}`);
  }

  it('waits for a primary config, installs, and re-applies when another component rewrites the file', async () => {
    const i = installer();
    const stop = new AbortController();
    const running = i.run(stop.signal);
    try {
      const file = join(conf, '10-list.conflist');
      writeFileSync(file, golden('list.conflist'));
      await until(
        () => i.ready && readFileSync(file, 'utf8') === golden('list.conflist.golden'),
        'first install',
      );
      // The primary CNI rewrites its file without us.
      writeFileSync(file, golden('list.conflist'));
      await until(() => readFileSync(file, 'utf8') === golden('list.conflist.golden'), 're-install');
      // A new file with higher priority takes over: we move into it.
      writeFileSync(join(conf, '05-bridge.conf'), golden('bridge.conf'));
      await until(() => existsSync(join(conf, '05-bridge.conflist')), 'move to the new primary');
      assert.equal(readFileSync(join(conf, '05-bridge.conflist'), 'utf8'), golden('bridge.conf.golden'));
      await until(() => i.ready, 'ready again');
    } finally {
      stop.abort();
      await running;
    }
    assert.equal(i.ready, false);
  });
});
