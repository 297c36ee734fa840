/**
 * Who a bearer token is. The admin token and the static users' tokens (kube-apiserver's
 * --token-auth-file; the lab's kubelets use them as real ones use client certificates) are opaque
 * random strings; service-account tokens are ES256 JWTs in the shape Kubernetes issues
 * (TokenRequest), checked here for TokenReview: signature, expiry, audience, and that the service
 * account (and bound pod) still exist with the same uid.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto';
import { findResource } from './resources.js';
import type { Store } from './store.js';

export const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
export const ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface UserInfo {
  username: string;
  uid: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export type Authentication = { ok: true; user: UserInfo; audiences: string[] } | { ok: false; error: string };

interface Claims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid: string };
  };
}

/** A user of the static token file: name, groups (besides system:authenticated) and its token. */
export interface StaticUser {
  name: string;
  groups: string[];
  token: string;
}

export interface TokenSecrets {
  /** Bearer token of the lab administrator, written into the kubeconfig. */
  adminToken: string;
  /** PKCS#8 PEM of the key that signs service-account tokens. */
  signingKey: string;
  /** Absent in state files written before static users existed. */
  users?: StaticUser[];
}

/** The administrator: in `system:masters`, which no authorizer can refuse. */
export const ADMIN_USER: UserInfo = {
  username: 'lab-admin',
  uid: 'lab-admin',
  groups: ['system:masters', 'system:authenticated'],
};

/** Gives each named user a token, keeping the token of one that already has one (restarts keep them). */
export function ensureStaticUsers(secrets: TokenSecrets, users: { name: string; groups?: string[] }[]): void {
  secrets.users ??= [];
  for (const u of users) {
    const known = secrets.users.find((x) => x.name === u.name);
    if (known) known.groups = u.groups ?? [];
    else
      secrets.users.push({
        name: u.name,
        groups: u.groups ?? [],
        token: randomBytes(24).toString('base64url'),
      });
  }
}

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export function newTokenSecrets(): TokenSecrets {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    adminToken: randomBytes(24).toString('base64url'),
    signingKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

const b64 = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export interface TokenRequestSpec {
  namespace: string;
  serviceAccount: { name: string; uid: string };
  audiences: string[];
  expirationSeconds: number;
  pod?: { name: string; uid: string };
}

export class TokenAuthority {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly keyId: string;

  constructor(
    private readonly credentials: TokenSecrets,
    private readonly store: Store,
  ) {
    this.privateKey = createPrivateKey(credentials.signingKey);
    this.publicKey = createPublicKey(this.privateKey);
    // Key id as Kubernetes derives it: a digest of the public key.
    this.keyId = createHash('sha256')
      .update(this.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64url');
  }

  get adminToken(): string {
    return this.credentials.adminToken;
  }

  userToken(name: string): string | undefined {
    return this.credentials.users?.find((u) => u.name === name)?.token;
  }

  issue(spec: TokenRequestSpec): { token: string; expirationTimestamp: string } {
    const now = Math.floor(Date.now() / 1000);
    const claims: Claims = {
      iss: ISSUER,
      sub: `system:serviceaccount:${spec.namespace}:${spec.serviceAccount.name}`,
      aud: spec.audiences,
      exp: now + spec.expirationSeconds,
      iat: now,
      nbf: now,
      jti: randomBytes(16).toString('hex'),
      'kubernetes.io': {
        namespace: spec.namespace,
        serviceaccount: spec.serviceAccount,
        ...(spec.pod ? { pod: spec.pod } : {}),
      },
    };
    const signingInput = `${b64({ alg: 'ES256', kid: this.keyId, typ: 'JWT' })}.${b64(claims)}`;
    const signature = sign('sha256', Buffer.from(signingInput), {
      key: this.privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return {
      token: `${signingInput}.${signature.toString('base64url')}`,
      expirationTimestamp: new Date(claims.exp * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
    };
  }

  /** `audiences` empty means the API server's own audience. */
  authenticate(token: string, audiences: string[] = []): Authentication {
    if (sameSecret(token, this.credentials.adminToken))
      return { ok: true, user: ADMIN_USER, audiences: audiences.length ? audiences : [API_AUDIENCE] };
    const user = this.credentials.users?.find((u) => sameSecret(token, u.token));
    if (user) {
      // Static tokens carry no audience: as kube-apiserver's audience-agnostic wrapper does, they
      // are good for the API server's own audience only (a kubelet's token is no CA credential).
      if (audiences.length && !audiences.includes(API_AUDIENCE))
        return { ok: false, error: 'token audiences do not match' };
      return {
        ok: true,
        user: { username: user.name, uid: user.name, groups: [...user.groups, 'system:authenticated'] },
        audiences: [API_AUDIENCE],
      };
    }
    return this.authenticateServiceAccount(token, audiences.length ? audiences : [API_AUDIENCE]);
  }

  private authenticateServiceAccount(token: string, wanted: string[]): Authentication {
    const parts = token.split('.');
    if (parts.length !== 3) return { ok: false, error: 'invalid bearer token' };
    const [header, payload, signature] = parts as [string, string, string];
    const valid = verify(
      'sha256',
      Buffer.from(`${header}.${payload}`),
      { key: this.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signature, 'base64url'),
    );
    if (!valid)
      return { ok: false, error: 'invalid bearer token, square/go-jose: error in cryptographic primitive' };
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    } catch {
      return { ok: false, error: 'invalid bearer token' };
    }
    if (claims.exp * 1000 < Date.now())
      return { ok: false, error: 'invalid bearer token, token has expired' };
    const audiences = wanted.filter((a) => claims.aud.includes(a));
    if (audiences.length === 0)
      return { ok: false, error: 'invalid bearer token, token audiences do not match' };
    const k8s = claims['kubernetes.io'];
    const sa = this.store.find(
      findResource('', 'v1', 'serviceaccounts')!,
      k8s.namespace,
      k8s.serviceaccount.name,
    );
    if (!sa || sa.metadata.uid !== k8s.serviceaccount.uid)
      return {
        ok: false,
        error: `invalid bearer token, service account ${k8s.namespace}/${k8s.serviceaccount.name} has been deleted`,
      };
    const extra: Record<string, string[]> = {};
    if (k8s.pod) {
      const pod = this.store.find(findResource('', 'v1', 'pods')!, k8s.namespace, k8s.pod.name);
      if (!pod || pod.metadata.uid !== k8s.pod.uid)
        return {
          ok: false,
          error: `invalid bearer token, pod ${k8s.namespace}/${k8s.pod.name} has been deleted`,
        };
      extra['authentication.kubernetes.io/pod-name'] = [k8s.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k8s.pod.uid];
    }
    extra['authentication.kubernetes.io/credential-id'] = [`JTI=${claims.jti}`];
    return {
      ok: true,
      user: {
        username: claims.sub,
        uid: k8s.serviceaccount.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${k8s.namespace}`, 'system:authenticated'],
        extra,
      },
      audiences,
    };
  }
}
