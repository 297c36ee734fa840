/**
 * A lab API server plus an ambit control plane on loopback for one test file, and shortcuts to create
 * the namespaces, service accounts, pods (with IPs) and services the tests need.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ControlPlane,
  type ControlPlaneOptions,
  startControlPlane,
} from '../../src/controlplane/index.js';
import { type ApiServer, startApiServer } from '../../src/lab/apiserver/index.js';
import { findResource } from '../../src/lab/apiserver/resources.js';

const R = {
  namespaces: findResource('', 'v1', 'namespaces')!,
  serviceaccounts: findResource('', 'v1', 'serviceaccounts')!,
  pods: findResource('', 'v1', 'pods')!,
  services: findResource('', 'v1', 'services')!,
};

export interface PodSpec {
  namespace: string;
  name: string;
  ip: string;
  node?: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export class Harness {
  constructor(
    readonly dir: string,
    readonly api: ApiServer,
    readonly cp: ControlPlane,
  ) {}

  static async start(options: Partial<ControlPlaneOptions> = {}): Promise<Harness> {
    const dir = mkdtempSync(join(tmpdir(), 'ambit-cp-'));
    const api = await startApiServer({ kubeconfigPath: join(dir, 'kubeconfig') });
    try {
      const cp = await startControlPlane({
        kubeconfig: join(dir, 'kubeconfig'),
        caDir: join(dir, 'ca'),
        listen: '127.0.0.1:0',
        ...options,
      });
      return new Harness(dir, api, cp);
    } catch (err) {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(): Promise<void> {
    await this.cp.close();
    await this.api.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  get address(): string {
    return `https://${this.cp.address}`;
  }

  namespace(name: string): void {
    if (!this.api.store.find(R.namespaces, undefined, name))
      this.api.store.create(R.namespaces, undefined, { metadata: { name } });
  }

  serviceAccount(namespace: string, name: string): void {
    this.namespace(namespace);
    if (!this.api.store.find(R.serviceaccounts, namespace, name))
      this.api.store.create(R.serviceaccounts, namespace, { metadata: { name } });
  }

  pod(p: PodSpec): void {
    this.serviceAccount(p.namespace, p.serviceAccount ?? 'default');
    this.api.store.create(R.pods, p.namespace, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, labels: p.labels ?? {}, annotations: p.annotations ?? {} },
      spec: {
        nodeName: p.node ?? 'node-a',
        serviceAccountName: p.serviceAccount ?? 'default',
        containers: [{ name: 'app', image: 'busybox', ports: [{ name: 'http', containerPort: 8080 }] }],
      },
    });
    this.api.store.patch(
      R.pods,
      p.namespace,
      p.name,
      'merge',
      { status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] } },
      'status',
    );
  }

  annotatePod(namespace: string, name: string, annotations: Record<string, string>): void {
    this.api.store.patch(R.pods, namespace, name, 'merge', { metadata: { annotations } });
  }

  /** The pod is gone: the kubelet's final delete (grace 0); a graceful DELETE would only mark it. */
  deletePod(namespace: string, name: string): void {
    this.api.store.delete(R.pods, namespace, name, { gracePeriodSeconds: 0 });
  }

  service(
    namespace: string,
    name: string,
    selector: Record<string, string>,
    port: number,
    targetPort: number | string,
  ): void {
    this.namespace(namespace);
    this.api.store.create(R.services, namespace, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: { selector, ports: [{ name: 'http', port, targetPort }] },
    });
  }

  /** A service-account token from the API server's TokenRequest endpoint, optionally bound to a pod. */
  async token(
    namespace: string,
    serviceAccount: string,
    opts: { pod?: string; audiences?: string[] } = {},
  ): Promise<string> {
    const body = JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: opts.audiences ?? ['istio-ca'],
        expirationSeconds: 3600,
        ...(opts.pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: opts.pod } } : {}),
      },
    });
    const url = new URL(
      `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
      this.api.url,
    );
    const text = await new Promise<string>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          ca: this.api.caPem,
          headers: { authorization: `Bearer ${this.api.token}`, 'content-type': 'application/json' },
        },
        (res) => {
          let out = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            out += c;
          });
          res.on('end', () =>
            res.statusCode === 201
              ? resolve(out)
              : reject(new Error(`TokenRequest ${res.statusCode}: ${out}`)),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    return (JSON.parse(text) as { status: { token: string } }).status.token;
  }
}

export { eventually } from '../apiserver/helpers.js';
