/**
 * Who is calling the CA: the bearer token is checked with a Kubernetes TokenReview, as istiod does for
 * third-party JWTs. Service-account tokens map to (namespace, service account) and, when bound to a pod,
 * the pod's name, which is how a node proxy's node is found.
 */
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { AmbitError, errorMessage } from '../../errors.js';

export interface Caller {
  namespace: string;
  serviceAccount: string;
  /** Set when the token is bound to a pod (projected service-account tokens are). */
  podName?: string;
}

/** Istio's CA audience; ztunnel's projected token carries it. */
export const DEFAULT_CA_AUDIENCES = ['istio-ca'];
const SA_PREFIX = 'system:serviceaccount:';

export interface TokenAuthenticator {
  authenticate(token: string): Promise<Caller>;
}

export class TokenReviewAuthenticator implements TokenAuthenticator {
  readonly #api: AuthenticationV1Api;

  constructor(
    kubeconfig: KubeConfig,
    readonly audiences: string[] = DEFAULT_CA_AUDIENCES,
  ) {
    this.#api = kubeconfig.makeApiClient(AuthenticationV1Api);
  }

  async authenticate(token: string): Promise<Caller> {
    let review: Awaited<ReturnType<AuthenticationV1Api['createTokenReview']>>;
    try {
      review = await this.#api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: this.audiences },
        },
      });
    } catch (err) {
      throw new AmbitError('ERR_TOKEN_REVIEW', `the token review failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const status = review.status;
    if (!status?.authenticated)
      throw new AmbitError('ERR_UNAUTHENTICATED', `token rejected: ${status?.error || 'not authenticated'}`);
    const username = status.user?.username ?? '';
    const parts = username.startsWith(SA_PREFIX) ? username.slice(SA_PREFIX.length).split(':') : [];
    if (parts.length !== 2 || !parts[0] || !parts[1])
      throw new AmbitError('ERR_UNAUTHENTICATED', `${username || 'the caller'} is not a service account`);
    const podName = status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    return { namespace: parts[0], serviceAccount: parts[1], ...(podName ? { podName } : {}) };
  }
}
