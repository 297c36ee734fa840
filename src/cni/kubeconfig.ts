/**
 * The kubeconfig the installer writes for the plugin and the plugin reads back: one cluster
 * `local`, one user `ambit-cni`, one context. Reading accepts any kubeconfig (current context).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { AmbitError, errorMessage } from '../errors.js';
import { cniInputError } from './errors.js';

/** Where to reach the API server and how to authenticate; PEM strings, never file paths. */
export interface KubeTarget {
  server: string;
  caPem?: string;
  insecureSkipTlsVerify?: boolean;
  token?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

function named(list: unknown, name: string, kind: string, file: string): Obj {
  const entry = Array.isArray(list) ? list.find((e) => isObj(e) && e['name'] === name) : undefined;
  if (!isObj(entry) || !isObj(entry[kind])) {
    throw cniInputError('KUBECONFIG_INVALID', `kubeconfig ${file}: no ${kind} named '${name}'`);
  }
  return entry[kind] as Obj;
}

/** Inline `*-data` (base64) wins over the file form, as kubectl does; files resolve against the kubeconfig's dir. */
function pem(obj: Obj, key: string, base: string): string | undefined {
  const data = obj[`${key}-data`];
  if (typeof data === 'string' && data !== '') return Buffer.from(data, 'base64').toString('utf8');
  const file = obj[key];
  if (typeof file === 'string' && file !== '') return readFileSync(resolve(base, file), 'utf8');
  return undefined;
}

export function parseKubeconfig(text: string, file = '(kubeconfig)'): KubeTarget {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw cniInputError('KUBECONFIG_INVALID', `kubeconfig ${file} is not valid YAML: ${errorMessage(err)}`);
  }
  if (!isObj(doc)) throw cniInputError('KUBECONFIG_INVALID', `kubeconfig ${file} is not a mapping`);
  const base = dirname(file);
  const contextName = doc['current-context'];
  if (typeof contextName !== 'string' || contextName === '') {
    throw cniInputError('KUBECONFIG_INVALID', `kubeconfig ${file} has no current-context`);
  }
  const context = named(doc['contexts'], contextName, 'context', file);
  const cluster = named(doc['clusters'], String(context['cluster']), 'cluster', file);
  const server = cluster['server'];
  if (typeof server !== 'string' || !/^https?:\/\//.test(server)) {
    throw cniInputError('KUBECONFIG_INVALID', `kubeconfig ${file}: cluster server must be an http(s) URL`);
  }
  const target: KubeTarget = { server };
  try {
    const ca = pem(cluster, 'certificate-authority', base);
    if (ca) target.caPem = ca;
    if (cluster['insecure-skip-tls-verify'] === true) target.insecureSkipTlsVerify = true;
    if (context['user'] !== undefined) {
      const user = named(doc['users'], String(context['user']), 'user', file);
      if (typeof user['token'] === 'string' && user['token'] !== '') target.token = user['token'];
      else if (typeof user['tokenFile'] === 'string') {
        target.token = readFileSync(resolve(base, user['tokenFile']), 'utf8').trim();
      }
      const cert = pem(user, 'client-certificate', base);
      const key = pem(user, 'client-key', base);
      if (cert) target.clientCertPem = cert;
      if (key) target.clientKeyPem = key;
    }
  } catch (err) {
    if (err instanceof AmbitError) throw err;
    throw cniInputError('KUBECONFIG_INVALID', `kubeconfig ${file}: ${errorMessage(err)}`);
  }
  return target;
}

export function readKubeconfig(file: string): KubeTarget {
  return parseKubeconfig(readFileSync(file, 'utf8'), file);
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** The plugin's kubeconfig text; all credentials inline so the file stands alone on the host. */
export function renderPluginKubeconfig(target: KubeTarget): string {
  const cluster: Obj = { server: target.server };
  if (target.insecureSkipTlsVerify) cluster['insecure-skip-tls-verify'] = true;
  else if (target.caPem) cluster['certificate-authority-data'] = b64(target.caPem);
  const user: Obj = {};
  if (target.token) user['token'] = target.token;
  if (target.clientCertPem) user['client-certificate-data'] = b64(target.clientCertPem);
  if (target.clientKeyPem) user['client-key-data'] = b64(target.clientKeyPem);
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster }],
    users: [{ name: 'ambit-cni', user }],
    contexts: [{ name: 'ambit-cni-context', context: { cluster: 'local', user: 'ambit-cni' } }],
    'current-context': 'ambit-cni-context',
  };
  return `# Kubeconfig file for the ambit-cni plugin (written by ambit cni-install).\n${stringify(doc)}`;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Inside a pod: the API server from KUBERNETES_SERVICE_* and this pod's service-account token and CA. */
export function inClusterTarget(
  env: NodeJS.ProcessEnv = process.env,
  saDir = SERVICE_ACCOUNT_DIR,
): KubeTarget {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port) {
    throw cniInputError(
      'KUBECONFIG_MISSING',
      'KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set: not running in a pod, give --kubeconfig-from',
    );
  }
  const protocol = env['KUBERNETES_SERVICE_PROTOCOL'] || 'https';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const target: KubeTarget = { server: `${protocol}://${hostPart}:${port}` };
  try {
    target.token = readFileSync(`${saDir}/token`, 'utf8').trim();
    if (env['SKIP_TLS_VERIFY'] === 'true') target.insecureSkipTlsVerify = true;
    else target.caPem = readFileSync(env['KUBE_CA_FILE'] || `${saDir}/ca.crt`, 'utf8');
  } catch (err) {
    throw cniInputError(
      'KUBECONFIG_MISSING',
      `cannot read the service account credentials: ${errorMessage(err)}`,
    );
  }
  return target;
}
