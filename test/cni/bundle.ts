/** Builds the real `ambit-cni` bundle once per test file and runs it as a runtime would. */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readKubeconfig, renderPluginKubeconfig } from '../../src/cni/kubeconfig.js';
import { type ApiServer, startApiServer } from '../../src/lab/apiserver/index.js';

const script = fileURLToPath(new URL('../../../scripts/build-cni.mjs', import.meta.url));

/** Returns the bundle's path inside a fresh temp dir (the caller removes `dir`). */
export function buildBundle(): { dir: string; plugin: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-cni-bundle-'));
  const plugin = join(dir, 'ambit-cni');
  execFileSync(process.execPath, [script, '--outfile', plugin], { stdio: 'pipe' });
  return { dir, plugin };
}

export interface CniRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Executes the plugin with exactly `env` (plus PATH) and `stdin`, like libcni's exec. */
export function runCni(
  plugin: string,
  env: Record<string, string | undefined>,
  stdin: string,
): Promise<CniRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(plugin, [], { env: { PATH: process.env['PATH'], ...env }, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
    });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
    child.stdin.end(stdin);
  });
}

export function cniEnv(command: string, extra: Record<string, string | undefined> = {}) {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'ctr-1',
    CNI_NETNS: '/var/run/netns/ambit-nonexistent',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    ...extra,
  };
}

/**
 * The lab API server as the plugin sees it: started, with its kubeconfig re-rendered into `runDir`
 * as the plugin's own (what `ambit cni-install --kubeconfig-from` does on a node).
 */
export async function apiServerForPlugin(bundleDir: string, runDir: string): Promise<ApiServer> {
  const api = await startApiServer({});
  const labKubeconfig = join(bundleDir, 'lab-kubeconfig');
  api.writeKubeconfig(labKubeconfig);
  writeFileSync(join(runDir, 'ambit-cni-kubeconfig'), renderPluginKubeconfig(readKubeconfig(labKubeconfig)), {
    mode: 0o600,
  });
  return api;
}

/** POSTs an object to the API server; rejects unless it answers 201 Created. */
export function createObject(api: ApiServer, path: string, obj: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${api.url}${path}`,
      {
        method: 'POST',
        ca: api.caPem,
        headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString('utf8');
        });
        res.on('end', () =>
          res.statusCode === 201 ? resolve() : reject(new Error(`${res.statusCode} ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(obj));
  });
}
