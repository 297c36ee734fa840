/** `ambit control-plane`: the Istio CA and delta xDS server (istiod's role for ambient), until SIGINT/SIGTERM. */
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { type ControlPlane, startControlPlane } from '../controlplane/index.js';
import { type ObjectRef, parseObjectRef } from '../controlplane/kube-ca-store.js';
import { runUntilShutdown } from '../runtime/lifecycle.js';
import { nameProcess } from '../runtime/process-name.js';
import { type Command, EXIT_OK, UsageError } from './command.js';

const HELP = `Usage: ambit control-plane --ca-dir DIR [options]

Serves, on one TLS gRPC port, istio.v1.auth.IstioCertificateService/CreateCertificate and delta ADS
for istio.workload.Address and istio.security.Authorization, built from the pods, services and
security.istio.io/v1 AuthorizationPolicies of the Kubernetes API. Callers of both send
"authorization: Bearer <token>", checked by TokenReview.

Options:
  --kubeconfig FILE        how to reach the Kubernetes API server (default: $KUBECONFIG, else
                           ~/.kube/config, else in-cluster)
  --ca-dir DIR             CA root key and certificate, created on first use (required)
  --ca-secret NS/NAME      keep the CA root in this Secret (istiod's istio-ca-secret): loaded into
                           --ca-dir if it exists, else the root made there is stored in it
  --root-cert-configmap NS/NAME
                           publish the root certificate (root-cert.pem) in this ConfigMap
                           (istiod's istio-ca-root-cert), for ztunnel's CA_ROOT_CA
  --listen HOST:PORT       address to serve on (default 127.0.0.1:15012; port 0 = any free port)
  --policies FILE          YAML with a 'policies' list (local workload file shape), reloaded on change,
                           served beside the cluster's AuthorizationPolicies
  --root-namespace NS      Istio's meshConfig.rootNamespace: AuthorizationPolicies there without a
                           selector apply mesh-wide (default istio-system)
  --trust-domain NAME      SPIFFE trust domain (default cluster.local)
  --cluster-id ID          cluster id in workload uids (default Kubernetes)
  --token-audience AUD     token audience accepted from CA and xDS callers, repeatable (default istio-ca)
  --node-proxy NS/SA       service account allowed to impersonate pods on its node, repeatable
                           (default istio-system/ztunnel)
  --serving-ip IP          extra IP in the serving certificate, repeatable
  --serving-dns NAME       DNS name of the serving certificate, repeatable (default
                           istiod.istio-system.svc, istiod, localhost)
  -h, --help               show this help

The mesh root certificate is DIR/root-cert.pem; give it to clients as CA_ROOT_CA / XDS_ROOT_CA.
`;

const command: Command = {
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        'ca-dir': { type: 'string' },
        listen: { type: 'string', default: '127.0.0.1:15012' },
        policies: { type: 'string' },
        'root-namespace': { type: 'string' },
        'trust-domain': { type: 'string' },
        'cluster-id': { type: 'string' },
        'token-audience': { type: 'string', multiple: true },
        'node-proxy': { type: 'string', multiple: true },
        'serving-ip': { type: 'string', multiple: true },
        'serving-dns': { type: 'string', multiple: true },
        'ca-secret': { type: 'string' },
        'root-cert-configmap': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    if (!values['ca-dir']) throw new UsageError('--ca-dir is required');
    for (const p of values['node-proxy'] ?? [])
      if (!/^[^/]+\/[^/]+$/.test(p))
        throw new UsageError(`--node-proxy "${p}" is not NAMESPACE/SERVICEACCOUNT`);
    let caSecret: ObjectRef | undefined;
    let rootCertConfigMap: ObjectRef | undefined;
    try {
      if (values['ca-secret']) caSecret = parseObjectRef(values['ca-secret'], '--ca-secret');
      if (values['root-cert-configmap'])
        rootCertConfigMap = parseObjectRef(values['root-cert-configmap'], '--root-cert-configmap');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    nameProcess('controlPlane');
    return runUntilShutdown('control-plane', async () => {
      const cp: ControlPlane = await startControlPlane({
        kubeconfig: values.kubeconfig ?? defaultKubeconfig(),
        ...(caSecret ? { caSecret } : {}),
        ...(rootCertConfigMap ? { rootCertConfigMap } : {}),
        ...(values['serving-dns'] ? { servingDns: values['serving-dns'] } : {}),
        caDir: values['ca-dir']!,
        listen: values.listen,
        ...(values.policies ? { policiesFile: values.policies } : {}),
        ...(values['root-namespace'] ? { rootNamespace: values['root-namespace'] } : {}),
        ...(values['trust-domain'] ? { trustDomain: values['trust-domain'] } : {}),
        ...(values['cluster-id'] ? { clusterId: values['cluster-id'] } : {}),
        ...(values['token-audience'] ? { audiences: values['token-audience'] } : {}),
        ...(values['node-proxy'] ? { nodeProxies: values['node-proxy'] } : {}),
        ...(values['serving-ip'] ? { servingIps: values['serving-ip'] } : {}),
      });
      process.stdout.write(`${cp.address}\n`);
      return { shutdown: () => cp.close() };
    });
  },
};

/** $KUBECONFIG, else ~/.kube/config, else the pod's service account (in-cluster), as the agent does. */
function defaultKubeconfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

export default command;
