#!/usr/bin/env node
// Writes ONE container image as an OCI image-layout archive (a tar of oci-layout, index.json and
// blobs/sha256/*) that `ctr images import` and other OCI tools accept, from one or more root
// filesystem directories (one gzip layer each, in order). Reproducible: every file in a layer gets
// the same mtime (SOURCE_DATE_EPOCH, default 0), owner 0:0, entries sorted by name, gzip without a
// name or time stamp, and the config carries no `created`/`history` time, so the same inputs give
// the same manifest digest.
//
//   node scripts/lib/oci-image.mjs --ref localhost/ambit/x:1 --out x.oci.tar --layer DIR [--layer DIR]...
//        [--entrypoint JSON] [--cmd JSON] [--env K=V]... [--workdir DIR] [--user U]
//        [--label K=V]... [--arch amd64] [--cache-dir DIR]
//
// Prints one JSON line: { ref, digest (manifest), archive, size (archive bytes), layers }.
// --cache-dir keeps compressed layers keyed by their uncompressed digest, so a warm build only
// tars and hashes a layer that did not change instead of compressing it again.
//
// The index's manifest descriptor carries `io.containerd.image.name` (the full reference: what
// containerd names the image on import) and `org.opencontainers.image.ref.name` (the tag).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { constants, createGzip } from 'node:zlib';

const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

/** GNU tar arguments for a byte-for-byte reproducible archive of everything under `dir`. */
export function reproducibleTarArgs(dir, epoch) {
  return [
    '--create',
    '--file=-',
    `--directory=${dir}`,
    '--sort=name',
    `--mtime=@${epoch}`,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--format=posix',
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    '--no-acls',
    '--no-xattrs',
    '--no-selinux',
    '.',
  ];
}

function runTar(args, onStdout) {
  const child = spawn('tar', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((res, rej) => {
    child.on('error', rej);
    child.on('close', (code) =>
      code === 0 ? res() : rej(new Error(`tar ${args.join(' ')} failed (${code}): ${stderr.trim()}`)),
    );
  });
  return Promise.all([onStdout(child.stdout), exited]);
}

function sha256File(path) {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => res(h.digest('hex')))
      .on('error', rej);
  });
}

/** Tars `dir` into `<tmp>/layer.tar`, returning its sha256 (the layer's diff_id). */
async function tarLayer(dir, epoch, tmp, i) {
  const tarPath = join(tmp, `layer${i}.tar`);
  const h = createHash('sha256');
  await runTar(reproducibleTarArgs(dir, epoch), async (stdout) => {
    stdout.on('data', (d) => h.update(d));
    await pipeline(stdout, createWriteStream(tarPath));
  });
  return { tarPath, diffId: h.digest('hex') };
}

async function gzipFile(src, dest) {
  // Node's gzip header has no name and mtime 0, so the output depends only on the input and level.
  await pipeline(
    createReadStream(src),
    createGzip({ level: constants.Z_BEST_COMPRESSION }),
    createWriteStream(dest),
  );
}

/** Adds a JSON blob; returns its descriptor fields. */
function putJson(blobs, value) {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(blobs, digest), bytes);
  return { digest: `sha256:${digest}`, size: bytes.length };
}

/**
 * Writes the archive. `image`: { ref, layers: [dir...], entrypoint?, cmd?, env?, workdir?, user?,
 * labels?, arch? }; `out`: archive path; `epoch`: mtime of every entry; `cacheDir`: optional.
 */
export async function writeOciArchive(image, { out, epoch = 0, cacheDir } = {}) {
  const { ref } = image;
  const colon = ref.lastIndexOf(':');
  if (colon <= ref.lastIndexOf('/')) throw new Error(`image reference '${ref}' has no tag`);
  const tag = ref.slice(colon + 1);
  const work = mkdtempSync(join(tmpdir(), 'ambit-oci-'));
  try {
    const layout = join(work, 'layout');
    const blobs = join(layout, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    if (cacheDir) mkdirSync(cacheDir, { recursive: true });

    const layers = [];
    for (const [i, dir] of image.layers.entries()) {
      if (!statSync(dir).isDirectory()) throw new Error(`layer ${dir} is not a directory`);
      const { tarPath, diffId } = await tarLayer(dir, epoch, work, i);
      const cached = cacheDir ? join(cacheDir, `${diffId}.gz9.tar.gz`) : undefined;
      const gz = join(work, `layer${i}.tar.gz`);
      let reused = false;
      if (cached && existsSync(cached)) {
        await pipeline(createReadStream(cached), createWriteStream(gz));
        reused = true;
      } else {
        await gzipFile(tarPath, gz);
        if (cached) {
          const partial = `${cached}.${process.pid}`;
          await pipeline(createReadStream(gz), createWriteStream(partial));
          renameSync(partial, cached);
        }
      }
      const digest = await sha256File(gz);
      renameSync(gz, join(blobs, digest));
      layers.push({
        dir,
        diffId: `sha256:${diffId}`,
        digest: `sha256:${digest}`,
        size: statSync(join(blobs, digest)).size,
        uncompressed: statSync(tarPath).size,
        reused,
      });
      rmSync(tarPath);
    }

    const config = {
      architecture: image.arch ?? 'amd64',
      os: 'linux',
      config: {
        ...(image.user ? { User: image.user } : {}),
        Env: image.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        ...(image.entrypoint ? { Entrypoint: image.entrypoint } : {}),
        ...(image.cmd ? { Cmd: image.cmd } : {}),
        WorkingDir: image.workdir ?? '/',
        ...(image.labels && Object.keys(image.labels).length ? { Labels: sortKeys(image.labels) } : {}),
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    };
    const configDesc = putJson(blobs, config);
    const manifest = {
      schemaVersion: 2,
      mediaType: MT.manifest,
      config: { mediaType: MT.config, ...configDesc },
      layers: layers.map((l) => ({ mediaType: MT.layer, digest: l.digest, size: l.size })),
    };
    const manifestDesc = putJson(blobs, manifest);
    const index = {
      schemaVersion: 2,
      mediaType: MT.index,
      manifests: [
        {
          mediaType: MT.manifest,
          ...manifestDesc,
          platform: { architecture: config.architecture, os: 'linux' },
          annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': tag },
        },
      ],
    };
    writeFileSync(join(layout, 'index.json'), JSON.stringify(index));
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

    const target = resolve(out);
    mkdirSync(dirname(target), { recursive: true });
    const partial = `${target}.partial`;
    await runTar(reproducibleTarArgs(layout, epoch), (stdout) =>
      pipeline(stdout, createWriteStream(partial)),
    );
    renameSync(partial, target);
    return {
      ref,
      digest: manifestDesc.digest,
      archive: target,
      size: statSync(target).size,
      layers: layers.map(({ dir, digest, diffId, size, uncompressed, reused }) => ({
        dir,
        digest,
        diffId,
        size,
        uncompressed,
        reused,
      })),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function sortKeys(o) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function keyValues(list, what) {
  const out = {};
  for (const kv of list ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--${what} wants KEY=VALUE, got '${kv}'`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

function jsonArray(text, what) {
  if (text === undefined) return undefined;
  const v = JSON.parse(text);
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
    throw new Error(`--${what} wants a JSON array of strings`);
  return v;
}

async function cli() {
  const { values } = parseArgs({
    options: {
      ref: { type: 'string' },
      out: { type: 'string' },
      layer: { type: 'string', multiple: true },
      entrypoint: { type: 'string' },
      cmd: { type: 'string' },
      env: { type: 'string', multiple: true },
      workdir: { type: 'string' },
      user: { type: 'string' },
      label: { type: 'string', multiple: true },
      arch: { type: 'string' },
      'cache-dir': { type: 'string' },
    },
  });
  if (!values.ref || !values.out || !values.layer?.length) {
    throw new Error(
      'usage: oci-image.mjs --ref NAME:TAG --out FILE --layer DIR [--layer DIR]... (see the header)',
    );
  }
  const epochText = process.env.SOURCE_DATE_EPOCH ?? '0';
  if (!/^\d+$/.test(epochText))
    throw new Error(`SOURCE_DATE_EPOCH must be seconds since 1970, got '${epochText}'`);
  const result = await writeOciArchive(
    {
      ref: values.ref,
      layers: values.layer,
      entrypoint: jsonArray(values.entrypoint, 'entrypoint'),
      cmd: jsonArray(values.cmd, 'cmd'),
      env: values.env,
      workdir: values.workdir,
      user: values.user,
      labels: keyValues(values.label, 'label'),
      arch: values.arch,
    },
    { out: values.out, epoch: Number(epochText), cacheDir: values['cache-dir'] },
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  cli().catch((err) => {
    process.stderr.write(`oci-image: ${err.message}\n`);
    process.exit(1);
  });
}
