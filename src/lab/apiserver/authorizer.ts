/**
 * Authorization of every authenticated request, in kube-apiserver's order with
 * `--authorization-mode=Node,RBAC`: `system:masters` first, then the Node authorizer (kubelets),
 * then RBAC with the lab's bootstrap policy. A refusal is a 403 Status worded as Kubernetes words it.
 */
import { NodeAuthorizer, nodeRestriction } from './node-authorizer.js';
import type { KObject } from './objects.js';
import {
  type Attributes,
  type Authorizer,
  authorizeAll,
  type Decision,
  mastersAuthorizer,
  RbacAuthorizer,
} from './rbac.js';
import { findResource } from './resources.js';
import { bootstrapPolicy } from './roles.js';
import { forbidden, type StatusError } from './status.js';
import type { Store } from './store.js';

export type { Attributes, Decision } from './rbac.js';

/** responsewriters.forbiddenMessage */
export function forbiddenMessage(a: Attributes): string {
  const user = a.user.username;
  if (!a.resourceRequest) return `User "${user}" cannot ${a.verb} path "${a.path}"`;
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const where = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  return `User "${user}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" ${where}`;
}

function refusal(a: Attributes, why: string): StatusError {
  return forbidden(
    a.resourceRequest ? { group: a.apiGroup, plural: a.resource, name: a.name } : undefined,
    why,
  );
}

export class ApiAuthorizer {
  private readonly chain: Authorizer[];

  constructor(private readonly store: Store) {
    const pods = findResource('', 'v1', 'pods')!;
    this.chain = [
      mastersAuthorizer,
      new NodeAuthorizer(() => store.list(pods, undefined)),
      new RbacAuthorizer(bootstrapPolicy()),
    ];
  }

  authorize(a: Attributes): Decision {
    return authorizeAll(this.chain, a);
  }

  /** Throws the 403 the real server answers when no authorizer allows the request. */
  check(a: Attributes): void {
    const d = this.authorize(a);
    if (d.decision === 'allow') return;
    const message = forbiddenMessage(a);
    throw refusal(a, d.reason ? `${message}: ${d.reason}` : message);
  }

  /** Admission (NodeRestriction): runs once the request is authorized and its body is known. */
  admit(a: Attributes, body?: unknown): void {
    if (!a.resourceRequest) return;
    const pods = findResource('', 'v1', 'pods')!;
    const why = nodeRestriction(a.user, a, {
      pod: (namespace, name): KObject | undefined => this.store.find(pods, namespace, name),
      body,
    });
    if (why !== undefined) throw refusal(a, why);
  }
}
