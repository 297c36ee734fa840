/**
 * scripts/lib/oci-image.mjs, the registry-free OCI image writer behind scripts/k8s's images: the
 * archive is a valid OCI image layout (every digest and size matches its blob, diff_ids match the
 * uncompressed layers, containerd's name annotation), the run config is as asked, and the same input
 * gives the same bytes.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const OCI_IMAGE = fileURLToPath(new URL('../../../scripts/lib/oci-image.mjs', import.meta.url));

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('oci-image.mjs', () => {
  let work = '';
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'ambit-oci-test-'));
    for (const layer of ['base', 'app']) mkdirSync(join(work, layer, 'bin'), { recursive: true });
    writeFileSync(join(work, 'base', 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
    symlinkSync('tool', join(work, 'base', 'bin', 'alias'));
    writeFileSync(join(work, 'app', 'bin', 'app'), 'app', { mode: 0o644 });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  function build(out: string): string {
    return execFileSync(
      OCI_IMAGE,
      [
        ...['--ref', 'ambit.local/test:v2', '--layer', join(work, 'base'), '--layer', join(work, 'app')],
        ...[
          '--out',
          out,
          '--entrypoint',
          '["/bin/tool"]',
          '--cmd',
          '["a b"]',
          '--env',
          'A=1',
          '--workdir',
          '/bin',
        ],
        ...['--user', '65534', '--label', 'org.example=yes'],
      ],
      { encoding: 'utf8' },
    );
  }

  test('writes a consistent OCI image layout that names the image for containerd', () => {
    const out = join(work, 'img.tar');
    const printed = build(out);
    const dir = join(work, 'x');
    mkdirSync(dir);
    execFileSync('tar', ['-xf', out, '-C', dir]);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8')), {
      imageLayoutVersion: '1.0.0',
    });
    const blob = (d: Descriptor) => {
      const b = readFileSync(join(dir, 'blobs', 'sha256', d.digest.slice('sha256:'.length)));
      assert.equal(sha256(b), d.digest);
      assert.equal(b.length, d.size);
      return b;
    };
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.equal(index.manifests.length, 1);
    const m = index.manifests[0]!;
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(m.annotations?.['io.containerd.image.name'], 'ambit.local/test:v2');
    assert.equal(m.annotations?.['org.opencontainers.image.ref.name'], 'v2');
    assert.equal(m.platform?.os, 'linux');
    const result = JSON.parse(printed) as { ref: string; digest: string; size: number };
    assert.equal(result.ref, 'ambit.local/test:v2');
    assert.equal(result.digest, m.digest);
    assert.equal(result.size, statSync(out).size);
    const manifest = JSON.parse(blob(m).toString()) as { config: Descriptor; layers: Descriptor[] };
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(manifest.layers.length, 2);
    const config = JSON.parse(blob(manifest.config).toString()) as {
      architecture: string;
      os: string;
      config: Record<string, unknown>;
      rootfs: { type: string; diff_ids: string[] };
    };
    assert.equal(config.architecture, m.platform?.architecture);
    assert.deepEqual(config.config, {
      Entrypoint: ['/bin/tool'],
      Cmd: ['a b'],
      Env: ['A=1'],
      WorkingDir: '/bin',
      User: '65534',
      Labels: { 'org.example': 'yes' },
    });
    assert.equal(config.rootfs.type, 'layers');
    const tars = manifest.layers.map((l) => {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      return gunzipSync(blob(l));
    });
    assert.deepEqual(config.rootfs.diff_ids, tars.map(sha256));
    // the layers list their files owned by root with the modes and links of the directory
    const listing = execFileSync('tar', ['-tvf', '-', '--numeric-owner'], {
      input: tars[0],
      encoding: 'utf8',
    });
    assert.match(listing, /^-rwxr-xr-x 0\/0 .* \.\/bin\/tool$/m);
    assert.match(listing, /^lrwxrwxrwx 0\/0 .* \.\/bin\/alias -> tool$/m);
    assert.match(execFileSync('tar', ['-tf', '-'], { input: tars[1], encoding: 'utf8' }), /^\.\/bin\/app$/m);
  });

  test('the same input gives the same archive, whatever the files times', () => {
    build(join(work, 'a.tar'));
    utimesSync(join(work, 'app', 'bin', 'app'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    build(join(work, 'b.tar'));
    assert.ok(readFileSync(join(work, 'a.tar')).equals(readFileSync(join(work, 'b.tar'))));
  });

  test('refuses a missing root file system or missing flags with a clear error', () => {
    const missing = spawnSync(
      OCI_IMAGE,
      ['--ref', 'x/y:z', '--layer', join(work, 'nope'), '--out', join(work, 'n.tar')],
      { encoding: 'utf8' },
    );
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /ENOENT|not a directory/);
    const noRef = spawnSync(OCI_IMAGE, ['--layer', work], { encoding: 'utf8' });
    assert.equal(noRef.status, 1);
    assert.match(noRef.stderr, /usage: oci-image.mjs --ref NAME:TAG --out FILE --layer DIR/);
  });
});
