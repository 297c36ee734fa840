/**
 * The HTTP side of the lab API server: Kubernetes REST paths to store operations, bearer-token
 * authentication, authorization (authorizer.ts) of every request as its verb on its resource, body
 * decoding (JSON or YAML) and Status errors. Any failure becomes a Status response;
 * nothing a client sends can throw out of the request handler.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { errorCode, errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import type { ApiAuthorizer, Attributes } from './authorizer.js';
import type { ApiServerErrorCode } from './errors.js';
import type { KObject } from './objects.js';
import { openApiGroupVersion, openApiRoot } from './openapi.js';
import { type Json, PATCH_CONTENT_TYPES } from './patch.js';
import { decodeReview } from './protobuf.js';
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersionOf,
  apiVersions,
  findResource,
  findReview,
  type ResourceType,
  type ReviewType,
  SELF_SUBJECT_ACCESS_REVIEW,
  SELF_SUBJECT_REVIEW,
  TOKEN_REVIEW,
  VERSION_INFO,
} from './resources.js';
import {
  type FieldRequirement,
  type LabelRequirement,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.js';
import { badRequest, invalid, methodNotAllowed, StatusError, unknownPath } from './status.js';
import type { DeleteOptions, Store } from './store.js';
import { type IncludeObject, toTable, wantsTable } from './table.js';
import { API_AUDIENCE, type TokenAuthority, type UserInfo } from './tokens.js';
import { WatchStream } from './watch.js';

const log = logger('ambit::lab::apiserver');

const MAX_BODY = 3 * 1024 * 1024;
/** Real servers end a watch after 30-60 minutes; clients rewatch from their last version. */
const DEFAULT_WATCH_TIMEOUT_S = 1800;

export interface HandlerOptions {
  store: Store;
  tokens: TokenAuthority;
  authorizer: ApiAuthorizer;
  bookmarkIntervalMs: number;
  /** Host:port clients should use, for /api's serverAddressByClientCIDRs. */
  serverAddress: () => string;
}

type Route =
  | { kind: 'doc'; body: object }
  | { kind: 'health' }
  | { kind: 'review'; review: ReviewType }
  | {
      kind: 'resource';
      r: ResourceType;
      namespace?: string;
      name?: string;
      sub?: string;
      watchPath: boolean;
    };

const OPEN_PATHS = new Set(['/version', '/healthz', '/livez', '/readyz']);

export class ApiHandler {
  readonly watches = new Set<WatchStream>();
  /** Set while shutting down: no new watch may start and outlive the server. */
  closing = false;

  constructor(private readonly o: HandlerOptions) {}

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.serve(req, res).catch((err) => this.fail(res, err));
  };

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closing) throw new StatusError('ServiceUnavailable', 'the lab API server is shutting down');
    const url = new URL(req.url ?? '/', 'http://lab');
    // The open paths are what system:public-info-viewer grants everyone, unauthenticated included.
    const user = OPEN_PATHS.has(url.pathname) ? undefined : this.authenticate(req);
    const route = this.route(url.pathname);
    const method = req.method ?? 'GET';
    const attrs = user ? attributesOf(user, route, method, url) : undefined;
    if (attrs) this.o.authorizer.check(attrs);
    if (route.kind === 'health') return send(res, 200, 'ok', 'text/plain');
    if (route.kind === 'doc') {
      if (method !== 'GET') throw methodNotAllowed();
      return send(res, 200, route.body);
    }
    if (route.kind === 'review') {
      if (method !== 'POST') throw methodNotAllowed();
      // kubectl asks its self-reviews in protobuf; a TokenReview must be JSON or YAML.
      const self = route.review !== TOKEN_REVIEW;
      const body = await readBody(req, self, self ? (decodeReview as (b: Buffer) => Json) : undefined);
      if (route.review === SELF_SUBJECT_REVIEW) return send(res, 201, selfSubjectReview(user!));
      if (route.review === SELF_SUBJECT_ACCESS_REVIEW) return send(res, 201, this.accessReview(user!, body));
      return send(res, 201, this.tokenReview(body));
    }
    log.debug('request', { verb: method, path: url.pathname, user: user?.username });
    await this.resource(req, res, route, url.searchParams, (body) => {
      if (attrs) this.o.authorizer.admit(attrs, body);
    });
  }

  private authenticate(req: IncomingMessage): UserInfo {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const result = m ? this.o.tokens.authenticate(m[1]!) : undefined;
    if (!result?.ok) throw new StatusError('Unauthorized', 'Unauthorized');
    return result.user;
  }

  private route(pathname: string): Route {
    const s = pathname.split('/').filter(Boolean);
    // Built-in resources and those of the CustomResourceDefinitions stored now.
    const served = this.o.store.resources();
    if (s.length === 1 && ['healthz', 'livez', 'readyz'].includes(s[0]!)) return { kind: 'health' };
    if (s.length === 1 && s[0] === 'version') return { kind: 'doc', body: VERSION_INFO };
    if (s[0] === 'api') {
      if (s.length === 1) return { kind: 'doc', body: apiVersions(this.o.serverAddress()) };
      if (s[1] !== 'v1') throw unknownPath();
      if (s.length === 2) return { kind: 'doc', body: apiResourceList('', 'v1', served)! };
      return this.resourceRoute('', 'v1', s.slice(2));
    }
    if (s[0] === 'apis') {
      if (s.length === 1) return { kind: 'doc', body: apiGroupList(served) };
      const group = apiGroup(s[1]!, served);
      if (!group) throw unknownPath();
      if (s.length === 2) return { kind: 'doc', body: group };
      const list = apiResourceList(s[1]!, s[2]!, served);
      if (!list) throw unknownPath();
      if (s.length === 3) return { kind: 'doc', body: list };
      const review = s.length === 4 ? findReview(s[1]!, s[2]!, s[3]!) : undefined;
      if (review) return { kind: 'review', review };
      return this.resourceRoute(s[1]!, s[2]!, s.slice(3));
    }
    if (s[0] === 'openapi' && s[1] === 'v3') {
      const doc = s.length === 2 ? openApiRoot(served) : openApiGroupVersion(s.slice(2).join('/'), served);
      if (doc) return { kind: 'doc', body: doc };
    }
    // Including /openapi/v2: kubectl only asks for it when v3 does not answer.
    throw unknownPath();
  }

  private resourceRoute(group: string, version: string, rest: string[]): Route {
    const watchPath = rest[0] === 'watch';
    const p = watchPath ? rest.slice(1) : rest;
    let namespace: string | undefined;
    let tail = p;
    if (p[0] === 'namespaces' && p.length >= 3 && p[2] !== 'status' && p[2] !== 'finalize') {
      namespace = p[1];
      tail = p.slice(2);
    }
    if (tail.length === 0 || tail.length > 3) throw unknownPath();
    const r = this.o.store.findResource(group, version, tail[0]!);
    if (!r || (namespace !== undefined && !r.namespaced)) throw unknownPath();
    const [, name, sub] = tail;
    if (sub !== undefined && !(r.subresources as string[]).includes(sub)) throw unknownPath();
    if (r.namespaced && name !== undefined && namespace === undefined) throw unknownPath();
    return {
      kind: 'resource',
      r,
      ...(namespace !== undefined ? { namespace } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(sub !== undefined ? { sub } : {}),
      watchPath,
    };
  }

  private async resource(
    req: IncomingMessage,
    res: ServerResponse,
    route: Extract<Route, { kind: 'resource' }>,
    q: URLSearchParams,
    /** Admission (NodeRestriction) of a write, with its body once read. */
    admit: (body?: unknown) => void,
  ): Promise<void> {
    const { r, namespace, name, sub } = route;
    const { store } = this.o;
    const method = req.method ?? 'GET';
    const status = sub === 'status' ? 'status' : undefined;
    const table = wantsTable(req.headers.accept);
    const include = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
    const render = (o: KObject): object => (table ? toTable(r, [o], o.metadata.resourceVersion, include) : o);

    if (name === undefined) {
      const watch = route.watchPath || q.get('watch') === 'true' || q.get('watch') === '1';
      if (method === 'GET' && watch) return this.watch(res, r, namespace, q, render);
      if (method === 'GET') {
        const items = this.select(r, namespace, q);
        const rv = String(store.resourceVersion);
        if (table) return send(res, 200, toTable(r, items, rv, include));
        return send(res, 200, {
          kind: `${r.kind}List`,
          apiVersion: apiVersionOf(r),
          metadata: { resourceVersion: rv },
          items,
        });
      }
      if (method === 'POST') {
        if (r.namespaced && namespace === undefined) throw methodNotAllowed();
        const body = await readBody(req);
        admit(body);
        return send(res, 201, render(store.create(r, namespace, body)));
      }
      if (method === 'DELETE' && r.verbs.includes('deletecollection')) {
        const options = deleteOptions(await readBody(req, true), q);
        const items = this.select(r, namespace, q).map((o) =>
          store.delete(r, o.metadata.namespace, o.metadata.name, options),
        );
        return send(res, 200, {
          kind: `${r.kind}List`,
          apiVersion: apiVersionOf(r),
          metadata: { resourceVersion: String(store.resourceVersion) },
          items,
        });
      }
      throw methodNotAllowed();
    }

    if (sub === 'token') {
      if (method !== 'POST') throw methodNotAllowed();
      const body = await readBody(req);
      admit(body);
      return send(res, 201, this.tokenRequest(r, namespace!, name, body));
    }
    if (method !== 'GET') admit();
    switch (method) {
      case 'GET':
        return send(res, 200, render(store.get(r, namespace, name)));
      case 'PUT':
        return send(res, 200, render(store.update(r, namespace, name, await readBody(req), status)));
      case 'PATCH': {
        const type = PATCH_CONTENT_TYPES[mediaType(req)];
        if (!type)
          throw new StatusError(
            'UnsupportedMediaType',
            `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_CONTENT_TYPES).join(', ')}`,
          );
        const patch = await readBody(req);
        return send(
          res,
          200,
          render(patchWithCodes(() => store.patch(r, namespace, name, type, patch, status), r, name)),
        );
      }
      case 'DELETE': {
        if (sub) throw methodNotAllowed();
        const options = deleteOptions(await readBody(req, true), q);
        return send(res, 200, render(store.delete(r, namespace, name, options)));
      }
      default:
        throw methodNotAllowed();
    }
  }

  private select(r: ResourceType, namespace: string | undefined, q: URLSearchParams): KObject[] {
    const { labels, fields } = selectors(r, q);
    return this.o.store
      .list(r, namespace)
      .filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o));
  }

  private watch(
    res: ServerResponse,
    r: ResourceType,
    namespace: string | undefined,
    q: URLSearchParams,
    render: (o: KObject) => object,
  ): void {
    const { labels, fields } = selectors(r, q);
    const rv = q.get('resourceVersion') ?? '';
    if (rv !== '' && !/^\d+$/.test(rv))
      throw badRequest(`resourceVersion: Invalid value: "${rv}": must be an integer`);
    const timeout = q.get('timeoutSeconds');
    if (timeout !== null && !/^\d+$/.test(timeout))
      throw badRequest(`timeoutSeconds: Invalid value: "${timeout}": must be a non-negative integer`);
    const initial = q.get('sendInitialEvents');
    const stream = new WatchStream(
      this.o.store,
      res,
      {
        resource: r,
        namespace,
        labels,
        fields,
        resourceVersion: rv,
        allowBookmarks: q.get('allowWatchBookmarks') === 'true',
        sendInitialEvents: initial === null ? undefined : initial === 'true',
        timeoutMs: (timeout !== null ? Number(timeout) : DEFAULT_WATCH_TIMEOUT_S) * 1000,
        bookmarkIntervalMs: this.o.bookmarkIntervalMs,
        render,
      },
      (w) => this.watches.delete(w),
    );
    this.watches.add(stream);
    stream.start();
  }

  private tokenRequest(r: ResourceType, namespace: string, name: string, body: unknown): object {
    const sa = this.o.store.get(r, namespace, name);
    const spec = (isMap(body) && isMap(body['spec']) ? body['spec'] : {}) as Record<string, unknown>;
    const audiences =
      Array.isArray(spec['audiences']) && spec['audiences'].length
        ? spec['audiences'].map(String)
        : [API_AUDIENCE];
    const expirationSeconds =
      typeof spec['expirationSeconds'] === 'number' ? spec['expirationSeconds'] : 3600;
    if (expirationSeconds < 600)
      throw invalid('TokenRequest', 'authentication.k8s.io', name, [
        {
          reason: 'FieldValueInvalid',
          field: 'spec.expirationSeconds',
          message: `Invalid value: ${expirationSeconds}: may not specify a duration less than 10 minutes`,
        },
      ]);
    const bound = isMap(spec['boundObjectRef']) ? spec['boundObjectRef'] : undefined;
    let pod: { name: string; uid: string } | undefined;
    if (bound) {
      if (bound['kind'] !== 'Pod')
        throw invalid('TokenRequest', 'authentication.k8s.io', name, [
          {
            reason: 'FieldValueNotSupported',
            field: 'spec.boundObjectRef.kind',
            message: 'Unsupported value: only Pod is supported here',
          },
        ]);
      const p = this.o.store.get(findResource('', 'v1', 'pods')!, namespace, String(bound['name']));
      if (bound['uid'] !== undefined && bound['uid'] !== p.metadata.uid)
        throw new StatusError(
          'Conflict',
          `the UID in the bound object reference (${String(bound['uid'])}) does not match the UID in record. The object might have been deleted and then recreated`,
        );
      pod = { name: p.metadata.name, uid: p.metadata.uid };
    }
    const issued = this.o.tokens.issue({
      namespace,
      serviceAccount: { name, uid: sa.metadata.uid },
      audiences,
      expirationSeconds,
      ...(pod ? { pod } : {}),
    });
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace, creationTimestamp: null },
      spec: { audiences, expirationSeconds, boundObjectRef: bound ?? null },
      status: issued,
    };
  }

  private tokenReview(body: unknown): object {
    const spec = isMap(body) && isMap(body['spec']) ? body['spec'] : undefined;
    if (!spec || typeof spec['token'] !== 'string' || spec['token'] === '')
      throw invalid('TokenReview', TOKEN_REVIEW.group, '', [
        { reason: 'FieldValueRequired', field: 'spec.token', message: 'Required value' },
      ]);
    const audiences = Array.isArray(spec['audiences']) ? spec['audiences'].map(String) : [];
    const result = this.o.tokens.authenticate(spec['token'], audiences);
    return {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec,
      status: result.ok
        ? { authenticated: true, user: result.user, audiences: result.audiences }
        : { authenticated: false, user: {}, error: result.error },
    };
  }

  /** SelfSubjectAccessReview: the caller's own question, answered by the same authorizers. */
  private accessReview(user: UserInfo, body: unknown): object {
    const spec = isMap(body) && isMap(body['spec']) ? body['spec'] : {};
    const ra = isMap(spec['resourceAttributes']) ? spec['resourceAttributes'] : undefined;
    const na = isMap(spec['nonResourceAttributes']) ? spec['nonResourceAttributes'] : undefined;
    if ((ra === undefined) === (na === undefined))
      throw invalid(SELF_SUBJECT_ACCESS_REVIEW.kind, SELF_SUBJECT_ACCESS_REVIEW.group, '', [
        {
          reason: 'FieldValueRequired',
          field: 'spec.resourceAttributes',
          message:
            'Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified',
        },
      ]);
    const str = (m: Record<string, unknown>, k: string): string => (typeof m[k] === 'string' ? m[k] : '');
    const attrs: Attributes = ra
      ? {
          user,
          resourceRequest: true,
          verb: str(ra, 'verb'),
          apiGroup: str(ra, 'group'),
          apiVersion: str(ra, 'version'),
          resource: str(ra, 'resource'),
          subresource: str(ra, 'subresource'),
          namespace: str(ra, 'namespace'),
          name: str(ra, 'name'),
        }
      : { user, resourceRequest: false, verb: str(na!, 'verb'), path: str(na!, 'path') };
    const d = this.o.authorizer.authorize(attrs);
    return {
      kind: SELF_SUBJECT_ACCESS_REVIEW.kind,
      apiVersion: apiVersionOf(SELF_SUBJECT_ACCESS_REVIEW),
      metadata: { creationTimestamp: null },
      spec,
      status: {
        allowed: d.decision === 'allow',
        ...(d.decision === 'deny' && d.reason ? { reason: d.reason } : {}),
      },
    };
  }

  private fail(res: ServerResponse, err: unknown): void {
    let status: StatusError;
    if (err instanceof StatusError) status = err;
    else if (
      errorCode(err) === ('SELECTOR_INVALID' satisfies ApiServerErrorCode) ||
      errorCode(err) === ('PATCH_MALFORMED' satisfies ApiServerErrorCode)
    )
      status = badRequest(errorMessage(err));
    else {
      log.error('request failed', { error: errorMessage(err) });
      status = new StatusError('InternalError', `Internal error occurred: ${errorMessage(err)}`);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    send(res, status.httpCode, status.toStatus());
  }
}

/**
 * A request as authorizers see it (apiserver's RequestInfoFactory): the verb from the method and
 * the path, the resource and subresource, and the namespace — for a Namespace object its own name,
 * so a RoleBinding in a namespace can grant access to that namespace's object.
 */
function attributesOf(user: UserInfo, route: Route, method: string, url: URL): Attributes {
  if (route.kind === 'doc' || route.kind === 'health')
    return { user, resourceRequest: false, verb: method.toLowerCase(), path: url.pathname };
  if (route.kind === 'review')
    return {
      user,
      resourceRequest: true,
      verb: method === 'POST' ? 'create' : method.toLowerCase(),
      apiGroup: route.review.group,
      apiVersion: route.review.version,
      resource: route.review.plural,
      subresource: '',
      namespace: '',
      name: '',
    };
  const { r, name, sub } = route;
  const q = url.searchParams;
  const watch = route.watchPath || q.get('watch') === 'true' || q.get('watch') === '1';
  const verbs: Record<string, string> =
    name === undefined
      ? { GET: watch ? 'watch' : 'list', POST: 'create', DELETE: 'deletecollection' }
      : {
          GET: route.watchPath ? 'watch' : 'get',
          POST: 'create',
          PUT: 'update',
          PATCH: 'patch',
          DELETE: 'delete',
        };
  return {
    user,
    resourceRequest: true,
    verb: verbs[method] ?? method.toLowerCase(),
    apiGroup: r.group,
    apiVersion: r.version,
    resource: r.plural,
    subresource: sub ?? '',
    namespace: route.namespace ?? (r.plural === 'namespaces' && name !== undefined ? name : ''),
    name: name ?? '',
  };
}

/** SelfSubjectReview: the caller as the server authenticated it. */
function selfSubjectReview(user: UserInfo): object {
  return {
    kind: SELF_SUBJECT_REVIEW.kind,
    apiVersion: apiVersionOf(SELF_SUBJECT_REVIEW),
    metadata: { creationTimestamp: null },
    status: { userInfo: user },
  };
}

/** JSON patch ops that cannot apply are 422 (the request was understood but cannot be done). */
function patchWithCodes(fn: () => KObject, r: ResourceType, name: string): KObject {
  try {
    return fn();
  } catch (err) {
    if (errorCode(err) === ('PATCH_FAILED' satisfies ApiServerErrorCode))
      throw invalid(r.kind, r.group, name, [
        { reason: 'FieldValueInvalid', field: '', message: errorMessage(err) },
      ]);
    throw err;
  }
}

function selectors(
  r: ResourceType,
  q: URLSearchParams,
): { labels: LabelRequirement[]; fields: FieldRequirement[] } {
  const labels = parseLabelSelector(q.get('labelSelector'));
  const fields = parseFieldSelector(q.get('fieldSelector'));
  for (const f of fields)
    if (f.key !== 'metadata.name' && f.key !== 'metadata.namespace' && !r.fields.includes(f.key))
      throw badRequest(`field label not supported: ${f.key}`);
  return { labels, fields };
}

/** DeleteOptions from the body (kubectl) or the query (client-go's and client-node's gracePeriodSeconds). */
function deleteOptions(body: unknown, q: URLSearchParams): DeleteOptions {
  const options: DeleteOptions = {};
  const fromQuery = q.get('gracePeriodSeconds');
  const grace = isMap(body) && body['gracePeriodSeconds'] != null ? body['gracePeriodSeconds'] : fromQuery;
  if (grace !== null) {
    const n = typeof grace === 'number' ? grace : /^-?\d+$/.test(String(grace)) ? Number(grace) : Number.NaN;
    if (!Number.isSafeInteger(n))
      throw badRequest(`gracePeriodSeconds: Invalid value: "${String(grace)}": must be an integer`);
    options.gracePeriodSeconds = n;
  }
  if (isMap(body) && isMap(body['preconditions'])) {
    const p = body['preconditions'];
    options.preconditions = {
      ...(typeof p['uid'] === 'string' ? { uid: p['uid'] } : {}),
      ...(typeof p['resourceVersion'] === 'string' ? { resourceVersion: p['resourceVersion'] } : {}),
    };
  }
  return options;
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** `protobuf`: a decoder for the Kubernetes protobuf bodies this route accepts (kubectl's reviews). */
async function readBody(
  req: IncomingMessage,
  optional = false,
  protobuf?: (body: Buffer) => Json,
): Promise<Json> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new StatusError('RequestEntityTooLarge', `the request body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const type = mediaType(req);
  if (protobuf && type === 'application/vnd.kubernetes.protobuf') return protobuf(Buffer.concat(chunks));
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') {
    if (optional) return null;
    throw badRequest('the request body is empty');
  }
  if (type.includes('protobuf') || type.includes('cbor'))
    throw new StatusError(
      'UnsupportedMediaType',
      'the lab API server reads JSON and YAML bodies, not protobuf; with kubectl, create objects from a manifest (kubectl apply -f)',
    );
  try {
    if (type === 'application/yaml' || type === 'application/x-yaml') return parseYaml(text) as Json;
    return JSON.parse(text) as Json;
  } catch (err) {
    throw badRequest(`the request body could not be decoded: ${errorMessage(err).split('\n')[0]}`);
  }
}

function send(res: ServerResponse, code: number, body: unknown, contentType = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
