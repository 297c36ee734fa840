/**
 * Who is calling the control plane (the CA and xDS alike, as istiod authenticates both): the
 * `authorization: Bearer <token>` metadata is checked with a Kubernetes TokenReview for the accepted
 * audiences, as istiod does for third-party JWTs. Service-account tokens map to (namespace, service
 * account) and, when bound to a pod, the pod's name, which is how a node proxy's node is found.
 */
import { type Metadata, status } from '@grpc/grpc-js';
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { AmbitError, errorMessage } from '../../errors.js';
import type { IdentityErrorCode } from '../../identity/errors.js';
import {
  type ControlPlaneErrorCode,
  controlPlaneError,
  type ForwardedCode,
  forwardedCode,
} from '../errors.js';

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
      throw controlPlaneError('ERR_TOKEN_REVIEW', `the token review failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const status = review.status;
    if (!status?.authenticated)
      throw controlPlaneError(
        'ERR_UNAUTHENTICATED',
        `token rejected: ${status?.error || 'not authenticated'}`,
      );
    const username = status.user?.username ?? '';
    const parts = username.startsWith(SA_PREFIX) ? username.slice(SA_PREFIX.length).split(':') : [];
    if (parts.length !== 2 || !parts[0] || !parts[1])
      throw controlPlaneError('ERR_UNAUTHENTICATED', `${username || 'the caller'} is not a service account`);
    const podName = status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    return { namespace: parts[0], serviceAccount: parts[1], ...(podName ? { podName } : {}) };
  }
}

/**
 * A refused call: the gRPC status and the reason the caller reads, under one of the control plane's or
 * identity's codes, or the code of the failure it reports (forwardedCode).
 */
export class CallRefusal extends AmbitError {
  constructor(
    readonly grpcCode: status,
    code: ControlPlaneErrorCode | IdentityErrorCode | ForwardedCode,
    message: string,
  ) {
    super(code, message);
  }
}

/**
 * The caller of a gRPC call, from its bearer token. Refuses with UNAUTHENTICATED when the token is
 * missing or rejected, UNAVAILABLE when it cannot be checked (the API server is unreachable).
 */
export async function authenticateCall(
  authenticator: TokenAuthenticator,
  metadata: Metadata,
): Promise<Caller> {
  const header = metadata.get('authorization')[0];
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!m)
    throw new CallRefusal(
      status.UNAUTHENTICATED,
      'ERR_UNAUTHENTICATED',
      'missing "authorization: Bearer <token>" metadata',
    );
  try {
    return await authenticator.authenticate(m[1]!);
  } catch (err) {
    const code = forwardedCode(err, 'ERR_UNAUTHENTICATED');
    const grpcCode = code === 'ERR_UNAUTHENTICATED' ? status.UNAUTHENTICATED : status.UNAVAILABLE;
    throw new CallRefusal(grpcCode, code, errorMessage(err));
  }
}
