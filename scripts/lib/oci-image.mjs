#!/usr/bin/env node
// @ts-check
// Writes a container image as an OCI image layout in a tar archive, with no registry and no container
// tool: each root file-system directory becomes one gzip layer (GNU tar, sorted names, zero mtimes,
// uid/gid 0, so the same input gives the same digests), then the config (with the layers' diff_ids),
// the manifest, index.json (annotated with `io.containerd.image.name` so `ctr images import` names the
// image) and oci-layout. The result imports with `ctr -n k8s.io images import FILE`.
//
// As a module:
//   import { writeOciArchive } from './oci-image.mjs';
//   await writeOciArchive({ ref: 'ambit.local/pause:v1', rootfs: [dir], out: 'pause.tar', entrypoint: ['/pause'] });
// As a command:
//   scripts/lib/oci-image.mjs --ref REF --rootfs DIR [--rootfs DIR...] --out FILE
//       [--entrypoint ARG]... [--cmd ARG]... [--env K=V]... [--workdir DIR] [--user U] [--label K=V]...
// prints `REF manifest=sha256:... size=N` on success.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};
const EPOCH = '1970-01-01T00:00:00Z';
const GOARCH = /** @type {Record<string, string>} */ ({
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
});

/**
 * @typedef {object} OciImageOptions
 * @property {string} ref image reference, e.g. `ambit.local/pause:v1` (the tag defaults to `latest`)
 * @property {string[]} rootfs directories, each one layer, lowest first
 * @property {string} out path of the tar archive to write
 * @property {string[]} [entrypoint]
 * @property {string[]} [cmd]
 * @property {string[]} [env] `K=V` entries
 * @property {string} [workdir]
 * @property {string} [user]
 * @property {Record<string, string>} [labels]
 * @property {string} [architecture] Go architecture name, default the running one
 */

/** @param {Buffer | string} data */
function sha256(data) {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Tar of a directory's contents, byte-for-byte reproducible. @param {string} dir */
function tarDirectory(dir) {
  if (!statSync(dir).isDirectory()) throw new Error(`oci-image: rootfs ${dir} is not a directory`);
  return execFileSync(
    'tar',
    [
      '--create',
      '--file=-',
      '--format=pax',
      '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      `--directory=${dir}`,
      '.',
    ],
    { maxBuffer: 4 << 30 },
  );
}

/** @param {string} ref */
function tagOf(ref) {
  const last = ref.slice(ref.lastIndexOf('/') + 1);
  const at = last.indexOf('@');
  const colon = last.indexOf(':');
  if (at >= 0) throw new Error(`oci-image: ref ${ref} must be a tag, not a digest`);
  return colon >= 0 ? last.slice(colon + 1) : 'latest';
}

/**
 * Writes the archive and returns the manifest digest and the archive size.
 * @param {OciImageOptions} o
 */
export async function writeOciArchive(o) {
  if (!o.ref) throw new Error('oci-image: ref is required');
  if (!o.rootfs?.length) throw new Error('oci-image: at least one rootfs directory is required');
  const tag = tagOf(o.ref);
  const ref = o.ref.slice(o.ref.lastIndexOf('/') + 1).includes(':') ? o.ref : `${o.ref}:${tag}`;
  const architecture = o.architecture ?? GOARCH[process.arch] ?? process.arch;
  const stage = mkdtempSync(join(tmpdir(), 'ambit-oci-'));
  try {
    const blobs = join(stage, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    /** @param {Buffer | string} data */
    const blob = (data) => {
      const digest = sha256(data);
      writeFileSync(join(blobs, digest.slice('sha256:'.length)), data);
      return { digest, size: Buffer.byteLength(data) };
    };
    const diffIds = [];
    const layers = [];
    for (const dir of o.rootfs) {
      const tar = tarDirectory(resolve(dir));
      diffIds.push(sha256(tar));
      layers.push({ mediaType: MEDIA.layer, ...blob(gzipSync(tar, { level: 9 })) });
    }
    /** @type {Record<string, unknown>} */
    const runConfig = {};
    if (o.entrypoint?.length) runConfig.Entrypoint = o.entrypoint;
    if (o.cmd?.length) runConfig.Cmd = o.cmd;
    runConfig.Env = o.env?.length
      ? o.env
      : ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
    if (o.workdir) runConfig.WorkingDir = o.workdir;
    if (o.user) runConfig.User = o.user;
    if (o.labels && Object.keys(o.labels).length) runConfig.Labels = o.labels;
    const config = blob(
      JSON.stringify({
        created: EPOCH,
        architecture,
        os: 'linux',
        config: runConfig,
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: o.rootfs.map(() => ({ created: EPOCH, created_by: 'ambit scripts/lib/oci-image.mjs' })),
      }),
    );
    const manifest = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.manifest,
        config: { mediaType: MEDIA.config, ...config },
        layers,
      }),
    );
    writeFileSync(
      join(stage, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.index,
        manifests: [
          {
            mediaType: MEDIA.manifest,
            ...manifest,
            platform: { architecture, os: 'linux' },
            annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': tag },
          },
        ],
      }),
    );
    writeFileSync(join(stage, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const out = resolve(o.out);
    mkdirSync(dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    writeFileSync(tmp, tarDirectory(stage));
    renameSync(tmp, out);
    return { ref, manifest: manifest.digest, size: statSync(out).size };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** @param {string[]} argv */
function parseArgs(argv) {
  /** @type {OciImageOptions & { rootfs: string[], entrypoint: string[], cmd: string[], env: string[], labels: Record<string, string> }} */
  const o = { ref: '', rootfs: [], out: '', entrypoint: [], cmd: [], env: [], labels: {} };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '-h' || flag === '--help') return null;
    if (value === undefined) throw new Error(`oci-image: ${flag} needs a value`);
    i++;
    switch (flag) {
      case '--ref':
        o.ref = value;
        break;
      case '--rootfs':
        o.rootfs.push(value);
        break;
      case '--out':
        o.out = value;
        break;
      case '--entrypoint':
        o.entrypoint.push(value);
        break;
      case '--cmd':
        o.cmd.push(value);
        break;
      case '--env':
        o.env.push(value);
        break;
      case '--workdir':
        o.workdir = value;
        break;
      case '--user':
        o.user = value;
        break;
      case '--label': {
        const eq = value.indexOf('=');
        if (eq < 1) throw new Error(`oci-image: --label wants K=V, got ${value}`);
        o.labels[value.slice(0, eq)] = value.slice(eq + 1);
        break;
      }
      default:
        throw new Error(`oci-image: unknown flag ${flag}`);
    }
  }
  if (!o.ref || !o.out || !o.rootfs.length)
    throw new Error('oci-image: --ref, --rootfs and --out are required');
  return o;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  try {
    const o = parseArgs(process.argv.slice(2));
    if (!o) {
      console.log(
        'usage: oci-image.mjs --ref REF --rootfs DIR [--rootfs DIR...] --out FILE [--entrypoint ARG]... [--cmd ARG]...\n' +
          '                     [--env K=V]... [--workdir DIR] [--user U] [--label K=V]...',
      );
    } else {
      const r = await writeOciArchive(o);
      console.log(`${r.ref} manifest=${r.manifest} size=${r.size}`);
    }
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
