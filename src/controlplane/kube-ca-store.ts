/**
 * The control plane's CA root kept in the Kubernetes API, as istiod's self-signed CA keeps it: the
 * Secret `istio-ca-secret` (type `istio.io/ca-root`) holds the root key and certificate, so every
 * control plane pod (a restart, a rollout, a second replica) serves the same root; the ConfigMap
 * `istio-ca-root-cert` publishes the root certificate for clients (ztunnel mounts it).
 *
 * `restoreCaSecret` runs before LocalCa.open: an existing Secret's files are written into the CA
 * directory; `storeCaSecret` runs after it: with no Secret yet, the root LocalCa just made is saved,
 * unless another control plane saved one first, whose root then wins.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiException, CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { type AmbitError, errorMessage } from '../errors.js';
import { ROOT_CERT_FILE, ROOT_KEY_FILE } from '../identity/local-ca.js';
import { logger } from '../runtime/log.js';
import { controlPlaneError } from './errors.js';

const log = logger('ambit::controlplane::ca');

/** istiod's key names in istio-ca-secret: the CA is the root, so ca-cert.pem = root-cert.pem. */
export const CA_CERT_KEY = 'ca-cert.pem';
export const CA_KEY_KEY = 'ca-key.pem';
export const ROOT_CERT_KEY = 'root-cert.pem';
export const CERT_CHAIN_KEY = 'cert-chain.pem';
export const CA_SECRET_TYPE = 'istio.io/ca-root';

export interface ObjectRef {
  namespace: string;
  name: string;
}

/** `namespace/name`, as the flags take it. */
export function parseObjectRef(text: string, what: string): ObjectRef {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(text.trim());
  if (!m) throw controlPlaneError('ERR_CP_OBJECT_REF', `${what} "${text}" is not NAMESPACE/NAME`);
  return { namespace: m[1]!, name: m[3]! };
}

function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

function apiError(what: string, ref: ObjectRef, err: unknown): AmbitError {
  const detail =
    err instanceof ApiException ? `HTTP ${err.code}: ${bodyMessage(err.body)}` : errorMessage(err);
  return controlPlaneError('ERR_CP_KUBE_CA', `cannot ${what} ${ref.namespace}/${ref.name}: ${detail}`, {
    cause: err,
  });
}

function bodyMessage(body: unknown): string {
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return String((body as { message?: string } | undefined)?.message ?? body);
}

function decode(secret: V1Secret, key: string): string | undefined {
  const v = secret.data?.[key];
  return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
}

async function writeCaFiles(dir: string, keyPem: string, certPem: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, ROOT_KEY_FILE), keyPem, { mode: 0o600 });
  await writeFile(join(dir, ROOT_CERT_FILE), certPem, { mode: 0o600 });
}

export class KubeCaStore {
  readonly #core: CoreV1Api;

  constructor(kubeconfig: KubeConfig) {
    this.#core = kubeconfig.makeApiClient(CoreV1Api);
  }

  /** Writes the Secret's root into `dir`; false when there is no Secret yet. */
  async restoreCaSecret(ref: ObjectRef, dir: string): Promise<boolean> {
    let secret: V1Secret;
    try {
      secret = await this.#core.readNamespacedSecret(ref);
    } catch (err) {
      if (isStatus(err, 404)) return false;
      throw apiError('read the CA secret', ref, err);
    }
    const keyPem = decode(secret, CA_KEY_KEY);
    const certPem = decode(secret, CA_CERT_KEY) ?? decode(secret, ROOT_CERT_KEY);
    if (!keyPem || !certPem) {
      throw controlPlaneError(
        'ERR_CP_KUBE_CA',
        `CA secret ${ref.namespace}/${ref.name} lacks ${keyPem ? CA_CERT_KEY : CA_KEY_KEY}; fix or delete it`,
      );
    }
    await writeCaFiles(dir, keyPem, certPem);
    log.info('CA root loaded from secret', { secret: `${ref.namespace}/${ref.name}` });
    return true;
  }

  /**
   * Saves the root in `dir` as the Secret. Returns false when another control plane created the
   * Secret first: its root is then written into `dir`, and the caller must open the CA again.
   */
  async storeCaSecret(ref: ObjectRef, dir: string): Promise<boolean> {
    const [keyPem, certPem] = await Promise.all([
      readFile(join(dir, ROOT_KEY_FILE), 'utf8'),
      readFile(join(dir, ROOT_CERT_FILE), 'utf8'),
    ]);
    const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
    try {
      await this.#core.createNamespacedSecret({
        namespace: ref.namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: ref.name, namespace: ref.namespace },
          type: CA_SECRET_TYPE,
          data: {
            [CA_CERT_KEY]: b64(certPem),
            [CA_KEY_KEY]: b64(keyPem),
            [ROOT_CERT_KEY]: b64(certPem),
            [CERT_CHAIN_KEY]: '',
          },
        },
      });
      log.info('CA root stored in secret', { secret: `${ref.namespace}/${ref.name}` });
      return true;
    } catch (err) {
      if (!isStatus(err, 409)) throw apiError('create the CA secret', ref, err);
    }
    if (!(await this.restoreCaSecret(ref, dir))) {
      throw controlPlaneError(
        'ERR_CP_KUBE_CA',
        `CA secret ${ref.namespace}/${ref.name} vanished while it was made`,
      );
    }
    return false;
  }

  /** Creates or updates the ConfigMap so that its `root-cert.pem` is `rootPem`. */
  async publishRoot(ref: ObjectRef, rootPem: string): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      let existing: Awaited<ReturnType<CoreV1Api['readNamespacedConfigMap']>> | undefined;
      try {
        existing = await this.#core.readNamespacedConfigMap(ref);
      } catch (err) {
        if (!isStatus(err, 404)) throw apiError('read the root certificate configmap', ref, err);
      }
      try {
        if (!existing) {
          await this.#core.createNamespacedConfigMap({
            namespace: ref.namespace,
            body: {
              apiVersion: 'v1',
              kind: 'ConfigMap',
              metadata: { name: ref.name, namespace: ref.namespace },
              data: { [ROOT_CERT_KEY]: rootPem },
            },
          });
        } else if (existing.data?.[ROOT_CERT_KEY] !== rootPem) {
          existing.data = { ...existing.data, [ROOT_CERT_KEY]: rootPem };
          await this.#core.replaceNamespacedConfigMap({ ...ref, body: existing });
        }
        log.info('root certificate published', { configmap: `${ref.namespace}/${ref.name}` });
        return;
      } catch (err) {
        // Someone else created or changed it meanwhile: read again and retry.
        if (!isStatus(err, 409)) throw apiError('write the root certificate configmap', ref, err);
      }
    }
    throw controlPlaneError(
      'ERR_CP_KUBE_CA',
      `cannot write the root certificate configmap ${ref.namespace}/${ref.name}: it kept changing`,
    );
  }
}
