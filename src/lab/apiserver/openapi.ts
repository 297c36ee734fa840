/**
 * Just enough OpenAPI v3 for kubectl: for each resource, its PATCH operation with the
 * `fieldValidation` parameter. kubectl reads that to decide the server validates fields, and then
 * skips client-side schema validation, which would need the (protobuf-only) OpenAPI v2 document.
 */
import { apiVersionOf, groupsOf, RESOURCES, type ResourceType } from './resources.js';

const groupPath = (group: string, version: string): string =>
  group ? `apis/${group}/${version}` : `api/${version}`;

export function openApiRoot(served: readonly ResourceType[] = RESOURCES): object {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const gv of [{ name: '', version: 'v1' }, ...groupsOf(served)]) {
    const p = groupPath(gv.name, gv.version);
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}` };
  }
  return { paths };
}

export function openApiGroupVersion(
  path: string,
  served: readonly ResourceType[] = RESOURCES,
): object | undefined {
  const resources = served.filter((r) => groupPath(r.group, r.version) === path);
  if (resources.length === 0 && !Object.keys((openApiRoot(served) as { paths: object }).paths).includes(path))
    return undefined;
  const paths: Record<string, object> = {};
  for (const r of resources) {
    const base = r.namespaced ? `/${path}/namespaces/{namespace}/${r.plural}` : `/${path}/${r.plural}`;
    paths[`${base}/{name}`] = {
      patch: {
        'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
        'x-kubernetes-action': 'patch',
        parameters: [{ name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } }],
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  const version = resources[0] ? apiVersionOf(resources[0]) : path;
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: `ambit-lab ${version}` },
    paths,
    components: {},
  };
}
