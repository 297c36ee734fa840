/**
 * RBAC as Kubernetes evaluates it (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac): the request's
 * attributes against the rules of every Role/ClusterRole bound to the user, one of their groups or
 * their service account. Allow-only: no rule matching means no opinion, which ends as 403.
 */
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
  RbacV1Subject as V1Subject,
} from '@kubernetes/client-node';
import type { UserInfo } from './tokens.js';

/** What an authorizer decides on (k8s.io/apiserver/pkg/authorization/authorizer.Attributes). */
export type Attributes =
  | {
      user: UserInfo;
      resourceRequest: true;
      verb: string;
      apiGroup: string;
      apiVersion: string;
      resource: string;
      subresource: string;
      /** '' for cluster-scoped requests and for lists across all namespaces. */
      namespace: string;
      /** '' for collection requests. */
      name: string;
    }
  | { user: UserInfo; resourceRequest: false; verb: string; path: string };

/** As in Kubernetes: `noOpinion` passes the request to the next authorizer, keeping the reason. */
export interface Decision {
  decision: 'allow' | 'deny' | 'noOpinion';
  reason: string;
}

export const ALLOW: Decision = { decision: 'allow', reason: '' };
export const noOpinion = (reason = ''): Decision => ({ decision: 'noOpinion', reason });

export interface Authorizer {
  authorize(a: Attributes): Decision;
}

/** The policy in force: cluster-wide roles and bindings, and namespaced ones. */
export interface RbacPolicy {
  clusterRoles: V1ClusterRole[];
  clusterRoleBindings: V1ClusterRoleBinding[];
  roles: V1Role[];
  roleBindings: V1RoleBinding[];
}

const has = (list: string[] | undefined, v: string): boolean =>
  !!list && (list.includes(v) || list.includes('*'));

/** rbac/v1 RuleAllows: verb, group, resource (`*`, `res/sub`, `*​/sub`), resourceNames; or a non-resource URL. */
export function ruleAllows(a: Attributes, rule: V1PolicyRule): boolean {
  if (!has(rule.verbs, a.verb)) return false;
  if (!a.resourceRequest) {
    return (rule.nonResourceURLs ?? []).some(
      (u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))),
    );
  }
  if (!has(rule.apiGroups, a.apiGroup)) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resourceOk = (rule.resources ?? []).some(
    (r) => r === '*' || r === combined || (a.subresource !== '' && r === `*/${a.subresource}`),
  );
  if (!resourceOk) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || names.includes(a.name);
}

export function rulesAllow(a: Attributes, rules: V1PolicyRule[]): boolean {
  return rules.some((r) => ruleAllows(a, r));
}

/** rbac's appliesTo: a ServiceAccount subject is the user `system:serviceaccount:<ns>:<name>`. */
function appliesTo(user: UserInfo, subject: V1Subject, bindingNamespace: string): boolean {
  switch (subject.kind) {
    case 'User':
      return user.username === subject.name;
    case 'Group':
      return user.groups.includes(subject.name);
    case 'ServiceAccount':
      return (
        user.username === `system:serviceaccount:${subject.namespace || bindingNamespace}:${subject.name}`
      );
    default:
      return false;
  }
}

export class RbacAuthorizer implements Authorizer {
  constructor(private readonly policy: RbacPolicy) {}

  authorize(a: Attributes): Decision {
    return rulesAllow(a, this.rulesFor(a.user, a.resourceRequest ? a.namespace : '')) ? ALLOW : noOpinion();
  }

  /** Every rule that applies to the user in `namespace` ('' = cluster-wide only). */
  rulesFor(user: UserInfo, namespace: string): V1PolicyRule[] {
    const rules: V1PolicyRule[] = [];
    for (const b of this.policy.clusterRoleBindings) {
      if ((b.subjects ?? []).some((s) => appliesTo(user, s, '')))
        rules.push(...this.roleRules(b.roleRef.kind, b.roleRef.name, ''));
    }
    if (namespace === '') return rules;
    for (const b of this.policy.roleBindings) {
      const ns = b.metadata?.namespace ?? '';
      if (ns !== namespace || !(b.subjects ?? []).some((s) => appliesTo(user, s, ns))) continue;
      rules.push(...this.roleRules(b.roleRef.kind, b.roleRef.name, ns));
    }
    return rules;
  }

  private roleRules(kind: string, name: string, namespace: string): V1PolicyRule[] {
    const role =
      kind === 'ClusterRole'
        ? this.policy.clusterRoles.find((r) => r.metadata?.name === name)
        : this.policy.roles.find((r) => r.metadata?.name === name && r.metadata?.namespace === namespace);
    return role?.rules ?? [];
  }
}

/** Kubernetes' privileged-group authorizer: `system:masters` bypasses every other check. */
export const mastersAuthorizer: Authorizer = {
  authorize: (a) => (a.user.groups.includes('system:masters') ? ALLOW : noOpinion()),
};

/** The union (authorizerfactory's unionAuthzHandler): the first allow or deny wins; no opinion from all is a deny with their reasons. */
export function authorizeAll(authorizers: Authorizer[], a: Attributes): Decision {
  const reasons: string[] = [];
  for (const z of authorizers) {
    const d = z.authorize(a);
    if (d.decision !== 'noOpinion') return d;
    if (d.reason) reasons.push(d.reason);
  }
  return { decision: 'deny', reason: reasons.join(', ') };
}
