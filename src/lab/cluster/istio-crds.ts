/**
 * The Istio CRDs the lab installs, as the chart does (deploy/charts/ambit/templates/base): the same
 * definition, checked against the chart's by a test, created through the API as `kubectl apply` would.
 */
import {
  ApiextensionsV1Api,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { isStatus } from './kube.js';

const version = (name: string, storage: boolean) => ({
  name,
  served: true,
  storage,
  additionalPrinterColumns: [
    { name: 'Action', type: 'string', description: 'The operation to take.', jsonPath: '.spec.action' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  schema: {
    openAPIV3Schema: {
      type: 'object',
      properties: {
        spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      },
    },
  },
  subresources: { status: {} },
});

export const AUTHORIZATION_POLICY_CRD: V1CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: {
    name: 'authorizationpolicies.security.istio.io',
    labels: { app: 'istio-pilot', istio: 'security' },
  },
  spec: {
    group: 'security.istio.io',
    names: {
      kind: 'AuthorizationPolicy',
      listKind: 'AuthorizationPolicyList',
      plural: 'authorizationpolicies',
      singular: 'authorizationpolicy',
      shortNames: ['ap'],
      categories: ['istio-io', 'security-istio-io'],
    },
    scope: 'Namespaced',
    versions: [version('v1', true), version('v1beta1', false)],
  },
};

/** Creates the CRDs that are missing (a lab brought up again keeps its own). */
export async function installIstioCrds(kubeconfig: KubeConfig): Promise<void> {
  const api = kubeconfig.makeApiClient(ApiextensionsV1Api);
  for (const body of [AUTHORIZATION_POLICY_CRD]) {
    try {
      await api.createCustomResourceDefinition({ body });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }
}
