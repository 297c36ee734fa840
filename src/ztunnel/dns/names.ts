/**
 * The names a query may mean, from the asking pod's point of view (ztunnel's `get_aliases`): the name
 * itself, its Kubernetes long form (`name` -> `name.<ns>.svc.<domain>`, `name.ns` -> `name.ns.svc.<domain>`,
 * `name.ns.svc` -> `name.ns.svc.<domain>`), and the same for the name with one of the pod's search
 * domains taken off (a stub resolver that appended it first).
 */

export interface Alias {
  /** Lower case, no trailing dot. */
  name: string;
  /** Set when the alias came from taking a search domain off: the answer then carries a CNAME to it. */
  stripped?: string;
}

/** A pod's search list as Kubernetes writes it for ClusterFirst pods (ztunnel assumes the same). */
export function searchDomains(namespace: string, clusterDomain: string): string[] {
  return [`${namespace}.svc.${clusterDomain}`, `svc.${clusterDomain}`, clusterDomain];
}

export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function kubeLongForms(name: string, namespace: string, clusterDomain: string): string[] {
  const labels = name.split('.');
  switch (labels.length) {
    case 1:
      return [`${name}.${namespace}.svc.${clusterDomain}`];
    case 2:
      return [`${name}.svc.${clusterDomain}`];
    case 3:
      return labels[2] === 'svc' ? [`${name}.${clusterDomain}`] : [];
    default:
      return [];
  }
}

export function aliases(requested: string, namespace: string, clusterDomain: string): Alias[] {
  const out: Alias[] = [];
  const seen = new Set<string>();
  const add = (alias: Alias) => {
    if (seen.has(alias.name)) return;
    seen.add(alias.name);
    out.push(alias);
  };
  const name = normalizeName(requested);
  if (name === '') return out;
  add({ name });
  for (const long of kubeLongForms(name, namespace, clusterDomain)) add({ name: long });
  for (const domain of searchDomains(namespace, clusterDomain)) {
    if (!name.endsWith(`.${domain}`)) continue;
    const stripped = name.slice(0, -(domain.length + 1));
    add({ name: stripped, stripped });
    for (const long of kubeLongForms(stripped, namespace, clusterDomain)) add({ name: long, stripped });
  }
  return out;
}
