/**
 * The container images scripts/build-image makes (k8s suite: it builds images, so it stays out of
 * the default `npm test`). Built twice into temp dirs, once with an empty layer cache: the same
 * manifest digests both times; the archives are valid OCI layouts named <hub>/<name>:<tag>; the
 * ambit image's root filesystem runs every component's CLI and the netfilter/iproute2 tools it
 * ships, chrooted in a throw-away netns (rules applied there with the image's own iptables); and a
 * private containerd (its own socket, root and state dir) imports all three archives and runs them:
 * httpbin answers the sleep image's curl on /get and /post inside a netns made for the test.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { run, TestNetns } from '../helpers/netns.js';
import { eventually } from '../helpers/wait.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const HUB = 'localhost/ambit';
const NAMES = ['ambit', 'sleep', 'httpbin'] as const;
// Budgets (compressed archive bytes) that catch an image growing by accident; measured 48.0, 9.3, 35.7 MB.
const BUDGET_MB: Record<(typeof NAMES)[number], number> = { ambit: 55, sleep: 12, httpbin: 40 };
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const execFileP = promisify(execFile);

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

async function buildImages(outDir: string, cacheDir: string): Promise<Map<string, string>> {
  const { stdout } = await execFileP(join(ROOT, 'scripts', 'build-image'), ['--all', '--out-dir', outDir], {
    cwd: ROOT,
    env: { ...process.env, AMBIT_IMAGE_CACHE: cacheDir },
    maxBuffer: 16 * 1024 * 1024,
  });
  const digests = new Map<string, string>();
  for (const m of stdout.matchAll(/^(\S+)\s+(sha256:[0-9a-f]{64})\s/gm)) digests.set(m[1]!, m[2]!);
  return digests;
}

async function sha256(path: string, gunzip = false): Promise<string> {
  const h = createHash('sha256');
  const source = createReadStream(path);
  await pipeline(gunzip ? source.pipe(createGunzip()) : source, async (chunks: AsyncIterable<Buffer>) => {
    for await (const c of chunks) h.update(c);
  });
  return `sha256:${h.digest('hex')}`;
}

const blob = (layout: string, digest: string) =>
  join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

/** Unpacks an archive into `dir`; returns the manifest, the config and each layer blob's path. */
function openArchive(archive: string, dir: string) {
  mkdirSync(dir, { recursive: true });
  run('tar', ['-xf', archive, '-C', dir]);
  const index = readJson<{ manifests: Descriptor[] }>(join(dir, 'index.json'));
  const manifest = readJson<{ config: Descriptor; layers: Descriptor[]; mediaType: string }>(
    blob(dir, index.manifests[0]!.digest),
  );
  const config = readJson<
    Record<string, unknown> & { rootfs: { diff_ids: string[] }; config: Record<string, unknown> }
  >(blob(dir, manifest.config.digest));
  return { index, manifest, config, layers: manifest.layers.map((l) => blob(dir, l.digest)) };
}

/** Runs `argv` chrooted into `rootfs` inside netns `ns`, with fresh /proc, /sys, /dev and /run. */
function inRootfs(ns: string, rootfs: string, argv: string[]): string {
  const script = [
    'R=$1; shift',
    'mount -t proc proc "$R/proc"',
    'mount -t sysfs sys "$R/sys"',
    'mount --rbind /dev "$R/dev"',
    'mount -t tmpfs tmpfs "$R/run"',
    `exec chroot "$R" /usr/bin/env -i ${PATH_ENV} "$@"`,
  ].join('\n');
  return run('ip', [
    'netns',
    'exec',
    ns,
    'unshare',
    '--mount',
    '--pid',
    '--fork',
    '--propagation',
    'private',
    'bash',
    '-c',
    script,
    'sh',
    rootfs,
    ...argv,
  ]);
}

/** A containerd of its own (socket, root, state under `dir`), without the CRI plugin. */
class PrivateContainerd {
  readonly socket: string;
  readonly namespace = `ambit-img-${randomBytes(3).toString('hex')}`;
  #proc: ChildProcess | undefined;

  constructor(readonly dir: string) {
    this.socket = join(dir, 'containerd.sock');
    writeFileSync(
      join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${join(dir, 'root')}"`,
        `state = "${join(dir, 'state')}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${this.socket}"`,
        '[ttrpc]',
        `  address = "${this.socket}.ttrpc"`,
      ].join('\n'),
    );
  }

  async start(): Promise<void> {
    this.#proc = spawn('containerd', ['--config', join(this.dir, 'config.toml')], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    await eventually('containerd to answer', () => {
      if (this.#proc?.exitCode !== null) throw new Error(`containerd exited (${this.#proc?.exitCode})`);
      try {
        this.ctr(['version']);
        return true;
      } catch {
        return false;
      }
    });
  }

  ctr(args: string[]): string {
    return run('ctr', ['--address', this.socket, '--namespace', this.namespace, ...args]);
  }

  /** Stops tasks, removes containers, images and the namespace's cgroups, stops containerd and its shims. */
  async stop(): Promise<void> {
    if (this.#proc && this.#proc.exitCode === null) {
      const lines = (cmd: string[]) => {
        try {
          return this.ctr(cmd).split('\n').filter(Boolean);
        } catch {
          return [];
        }
      };
      for (const id of lines(['tasks', 'ls', '-q'])) {
        try {
          this.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
        } catch {}
        await eventually(
          `task ${id} to stop`,
          () => !lines(['tasks', 'ls']).some((l) => l.startsWith(`${id} `) && l.includes('RUNNING')),
        );
        try {
          this.ctr(['tasks', 'rm', id]);
        } catch {}
      }
      for (const id of lines(['containers', 'ls', '-q'])) {
        try {
          this.ctr(['containers', 'rm', id]);
        } catch {}
      }
      for (const ref of lines(['images', 'ls', '-q'])) {
        try {
          this.ctr(['images', 'rm', ref]);
        } catch {}
      }
      const proc = this.#proc;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    // Shims of this containerd only: their command line names our socket.
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmdline.includes('containerd-shim') && cmdline.includes(this.socket))
          process.kill(Number(pid), 'SIGKILL');
      } catch {}
    }
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${this.dir}/`))
      .sort()
      .reverse();
    for (const m of mounts) {
      try {
        run('umount', [m]);
      } catch {}
    }
    for (const controller of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', controller, this.namespace);
      if (!existsSync(dir)) continue;
      const dirs = run('find', [dir, '-depth', '-type', 'd']).split('\n').filter(Boolean);
      for (const d of dirs) {
        try {
          run('rmdir', [d]);
        } catch {}
      }
    }
  }
}

describe('container images (scripts/build-image)', () => {
  const work = mkdtempSync(join(tmpdir(), 'ambit-image-test-'));
  const first = join(work, 'first');
  const second = join(work, 'second');
  let digests1: Map<string, string>;
  let digests2: Map<string, string>;
  const archive = (name: string) => join(first, `${name}-${VERSION}.oci.tar`);

  before(async () => {
    // First build: an empty layer cache, so every layer is staged and compressed from scratch.
    digests1 = await buildImages(first, join(work, 'cache'));
    // Second build: another output dir, the same cache (layers are re-tarred and re-hashed).
    digests2 = await buildImages(second, join(work, 'cache'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('builds reproducibly: the same manifest digests twice', () => {
    for (const name of NAMES) {
      const ref = `${HUB}/${name}:${VERSION}`;
      assert.match(digests1.get(ref) ?? '', /^sha256:/, `${ref} was built`);
      assert.equal(digests2.get(ref), digests1.get(ref), `${ref} has the same digest twice`);
    }
  });

  it('writes OCI layouts that name the image, with diff_ids and digests that match the blobs', async () => {
    for (const name of NAMES) {
      const dir = join(work, 'layout', name);
      const { index, manifest, config, layers } = openArchive(archive(name), dir);
      assert.deepEqual(readJson(join(dir, 'oci-layout')), { imageLayoutVersion: '1.0.0' });
      assert.equal(index.manifests.length, 1);
      const desc = index.manifests[0]!;
      assert.equal(desc.annotations?.['io.containerd.image.name'], `${HUB}/${name}:${VERSION}`);
      assert.equal(desc.annotations?.['org.opencontainers.image.ref.name'], VERSION);
      assert.deepEqual(desc.platform, { architecture: 'amd64', os: 'linux' });
      assert.equal(desc.digest, digests1.get(`${HUB}/${name}:${VERSION}`));
      assert.equal(await sha256(blob(dir, desc.digest)), desc.digest);
      assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(await sha256(blob(dir, manifest.config.digest)), manifest.config.digest);
      assert.equal(config['created'], undefined, 'no time stamp in the config');
      assert.equal(config['history'], undefined, 'no time stamp in the config');
      assert.equal(config.rootfs.diff_ids.length, layers.length);
      for (const [i, layer] of layers.entries()) {
        assert.equal(manifest.layers[i]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
        assert.equal(statSync(layer).size, manifest.layers[i]!.size);
        assert.equal(await sha256(layer), manifest.layers[i]!.digest);
        assert.equal(await sha256(layer, true), config.rootfs.diff_ids[i], `layer ${i} diff_id`);
      }
      const mb = statSync(archive(name)).size / 1e6;
      assert.ok(mb < BUDGET_MB[name], `${name} archive is ${mb.toFixed(1)} MB, budget ${BUDGET_MB[name]} MB`);
    }
    // httpbin shares the ambit image's node layer.
    const ambit = openArchive(archive('ambit'), join(work, 'layout', 'ambit'));
    const httpbin = openArchive(archive('httpbin'), join(work, 'layout', 'httpbin'));
    assert.equal(httpbin.config.rootfs.diff_ids[0], ambit.config.rootfs.diff_ids[0]);
    assert.deepEqual(ambit.config.config['Entrypoint'], ['/usr/local/bin/ambit']);
  });

  describe("the ambit image's root filesystem, chrooted in a throw-away netns", () => {
    const rootfs = join(work, 'rootfs');
    let ns: TestNetns;
    before(() => {
      const { layers } = openArchive(archive('ambit'), join(work, 'layout', 'ambit'));
      mkdirSync(rootfs, { recursive: true });
      for (const layer of layers) run('tar', ['-xzf', layer, '-C', rootfs]);
      ns = new TestNetns();
    });
    after(() => ns?.remove());

    it('runs every component CLI', () => {
      assert.match(inRootfs(ns.name, rootfs, ['ambit', '--help']), /^Usage: ambit <command>/);
      for (const cmd of ['agent', 'ztunnel', 'control-plane', 'cni-install']) {
        assert.match(
          inRootfs(ns.name, rootfs, ['ambit', cmd, '--help']),
          new RegExp(`^Usage: ambit ${cmd}`),
          cmd,
        );
      }
      assert.equal(inRootfs(ns.name, rootfs, ['node', '-v']).trim(), process.version);
    });

    it('carries the CNI plugin bundle, which runs where the installer copies it', () => {
      // Outside /app (no package.json "type": "module" above it), as in the node's CNI bin dir.
      inRootfs(ns.name, rootfs, [
        'node',
        '-e',
        "require('fs').copyFileSync('/app/dist/ambit-cni', '/tmp/ambit-cni')",
      ]);
      inRootfs(ns.name, rootfs, ['node', '-e', "require('fs').chmodSync('/tmp/ambit-cni', 0o755)"]);
      const version = JSON.parse(
        inRootfs(ns.name, rootfs, ['env', 'CNI_COMMAND=VERSION', '/tmp/ambit-cni']),
      ) as {
        supportedVersions: string[];
      };
      assert.ok(version.supportedVersions.includes('1.0.0'));
    });

    it('ships iptables (legacy and nft), nftables, ipset, iproute2 and the helpers ambit runs', () => {
      const expect: [string[], RegExp][] = [
        [['iptables-legacy', '-V'], /\(legacy\)/],
        [['ip6tables-legacy', '-V'], /\(legacy\)/],
        [['iptables-nft', '-V'], /\(nf_tables\)/],
        [['iptables', '-V'], /\(nf_tables\)/],
        [['ip6tables-restore', '-V'], /\(nf_tables\)/],
        [['nft', '-v'], /^nftables v/],
        [['ipset', '-v'], /^ipset v/],
        [['ip', '-V'], /iproute2/],
        [['ss', '-V'], /iproute2/],
        [['nsenter', '-V'], /util-linux/],
        [['unshare', '-V'], /util-linux/],
        [['mount', '-V'], /util-linux/],
        [['sysctl', '-n', 'net.ipv4.ip_forward'], /^[01]$/m],
        [['conntrack', '--version'], /conntrack v/],
        [['cat', '/usr/share/ambit/tools.packages'], /^iptables /m],
      ];
      for (const [argv, re] of expect) assert.match(inRootfs(ns.name, rootfs, argv), re, argv.join(' '));
    });

    it('loads the native addon and programs the redirection rules with its own iptables', () => {
      const addon = inRootfs(ns.name, rootfs, [
        'node',
        '-e',
        "console.log(typeof require('/app/native/build/Release/ambit_native.node').netnsCheck)",
      ]);
      assert.equal(addon.trim(), 'function');
      const netns = ['--netns', '/proc/self/ns/net', '--pod-ip', '10.250.0.5'];
      assert.match(inRootfs(ns.name, rootfs, ['ambit', 'redirect', 'apply', ...netns]), /applied/);
      assert.match(inRootfs(ns.name, rootfs, ['ambit', 'redirect', 'verify', ...netns]), /^ok: /);
      assert.match(inRootfs(ns.name, rootfs, ['iptables-save']), /^:ISTIO_PRERT/m);
      // The image's iptables-save and the host's see the same rules: the same kernel tables.
      assert.match(ns.exec('iptables-nft-save', []), /^:ISTIO_PRERT/m);
      assert.doesNotMatch(inRootfs(ns.name, rootfs, ['iptables-legacy-save']), /ISTIO_/);
      inRootfs(ns.name, rootfs, ['ambit', 'redirect', 'remove', ...netns]);
      assert.doesNotMatch(inRootfs(ns.name, rootfs, ['iptables-save']), /ISTIO_/);
    });
  });

  describe('a private containerd imports and runs the archives', () => {
    const ctrDir = join(work, 'containerd');
    let containerd: PrivateContainerd;
    let ns: TestNetns;
    before(async () => {
      mkdirSync(ctrDir, { recursive: true });
      containerd = new PrivateContainerd(ctrDir);
      await containerd.start();
      ns = new TestNetns();
    });
    after(async () => {
      await containerd?.stop();
      ns?.remove();
    });

    it('imports each archive under its name and digest', () => {
      for (const name of NAMES) containerd.ctr(['images', 'import', archive(name)]);
      const list = containerd.ctr(['images', 'ls']);
      for (const name of NAMES) {
        const ref = `${HUB}/${name}:${VERSION}`;
        assert.match(
          list,
          new RegExp(`^${ref.replace(/[.]/g, '\\.')}\\s+\\S+\\s+${digests1.get(ref)}`, 'm'),
          ref,
        );
      }
    });

    it('runs ambit, and httpbin answers curl from the sleep image on /get and /post', async () => {
      const netArg = `network:${ns.path}`;
      const runIn = (image: string, id: string, argv: string[]) =>
        containerd.ctr(['run', '--rm', '--with-ns', netArg, `${HUB}/${image}:${VERSION}`, id, ...argv]);
      assert.match(runIn('ambit', 'ambit-version', []), /^Usage: ambit <command>/);
      assert.equal(runIn('ambit', 'ambit-v', ['ambit', '--version']).trim(), `ambit ${VERSION}`);

      containerd.ctr(['run', '-d', '--with-ns', netArg, `${HUB}/httpbin:${VERSION}`, 'ambit-httpbin']);
      await eventually(
        'httpbin to listen on 8000',
        () => ns.exec('ss', ['-Hntl', 'sport = :8000']).trim() !== '',
      );
      const get = JSON.parse(
        runIn('sleep', 'ambit-curl-get', ['curl', '-sf', 'http://127.0.0.1:8000/get?x=1']),
      ) as {
        args: Record<string, string>;
        headers: Record<string, string>;
      };
      assert.deepEqual(get.args, { x: '1' });
      assert.match(get.headers['user-agent'] ?? '', /^curl\//);
      const post = JSON.parse(
        runIn('sleep', 'ambit-curl-post', [
          'curl',
          '-sf',
          '-H',
          'content-type: application/json',
          '--data',
          '{"hello":"ambit"}',
          'http://127.0.0.1:8000/post',
        ]),
      ) as { json: unknown };
      assert.deepEqual(post.json, { hello: 'ambit' });
      assert.match(runIn('sleep', 'ambit-sh', ['sh', '-c', 'echo $((6*7))']), /^42$/m);

      containerd.ctr(['tasks', 'kill', 'ambit-httpbin']); // SIGTERM: httpbin stops on its own
      await eventually('httpbin to stop on SIGTERM', () => /STOPPED/.test(containerd.ctr(['tasks', 'ls'])));
    });
  });
});
