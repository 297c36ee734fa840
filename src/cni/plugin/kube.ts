/**
 * Two GETs against the Kubernetes API (the pod, its namespace) with plain node:http(s) and the
 * plugin's kubeconfig. @kubernetes/client-node would cost far more start-up than a pod start
 * should pay (a 5.7 MB bundle), and its undici needs Node >= 22.19.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeTarget } from '../kubeconfig.js';
import type { Labels, PodLike } from '../selector.js';
import { pluginError } from './errors.js';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; labels?: Labels; annotations?: Labels };
  [key: string]: unknown;
}
export type KubePod = KubeObject & PodLike;

const REQUEST_TIMEOUT_MS = 5_000;
const MAX_BODY = 4 << 20;

export class KubeReader {
  readonly #target: KubeTarget;

  constructor(target: KubeTarget) {
    this.#target = target;
  }

  getPod(namespace: string, name: string): Promise<KubePod> {
    return this.#get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`);
  }

  getNamespace(name: string): Promise<KubeObject> {
    return this.#get(`/api/v1/namespaces/${encodeURIComponent(name)}`);
  }

  #get<T>(path: string): Promise<T> {
    const t = this.#target;
    const url = new URL(`${t.server.replace(/\/+$/, '')}${path}`);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (t.token) headers['authorization'] = `Bearer ${t.token}`;
    const isHttps = url.protocol === 'https:';
    const options: https.RequestOptions = { method: 'GET', headers, timeout: REQUEST_TIMEOUT_MS };
    if (isHttps) {
      if (t.caPem) options.ca = t.caPem;
      if (t.clientCertPem) options.cert = t.clientCertPem;
      if (t.clientKeyPem) options.key = t.clientKeyPem;
      options.rejectUnauthorized = !t.insecureSkipTlsVerify;
    }
    return new Promise<T>((resolve, reject) => {
      const req = (isHttps ? https : http).request(url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) req.destroy(new Error(`response larger than ${MAX_BODY} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            reject(
              pluginError(
                'KUBE_REQUEST_FAILED',
                `GET ${url.pathname}: HTTP ${res.statusCode}: ${reason(body)}`,
              ),
            );
            return;
          }
          try {
            resolve(JSON.parse(body) as T);
          } catch {
            reject(pluginError('KUBE_REQUEST_FAILED', `GET ${url.pathname}: response is not JSON`));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (err) =>
        reject(pluginError('KUBE_REQUEST_FAILED', `GET ${url.origin}${url.pathname}: ${err.message}`)),
      );
      req.end();
    });
  }
}

/** A Status object's message, else the first 200 characters of the body. */
function reason(body: string): string {
  try {
    const v = JSON.parse(body) as { message?: unknown };
    if (typeof v.message === 'string') return v.message;
  } catch {}
  return body.slice(0, 200);
}
