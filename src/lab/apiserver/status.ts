/**
 * Kubernetes `Status` failures. Every error the API server answers with is a StatusError: an HTTP
 * code, a Kubernetes reason (what clients branch on) and a stable ambit `code`.
 */
import { AmbitError } from '../../errors.js';

export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'Gone'
  | 'Expired'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'UnsupportedMediaType'
  | 'RequestEntityTooLarge'
  | 'InternalError'
  | 'ServiceUnavailable';

const HTTP_CODE: Record<StatusReason, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  Conflict: 409,
  AlreadyExists: 409,
  Gone: 410,
  Expired: 410,
  RequestEntityTooLarge: 413,
  UnsupportedMediaType: 415,
  Invalid: 422,
  InternalError: 500,
  ServiceUnavailable: 503,
};

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
}

/** The wire shape of a Kubernetes `Status`. */
export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: StatusReason | '';
  details?: StatusDetails;
  code: number;
}

export class StatusError extends AmbitError {
  readonly httpCode: number;
  readonly reason: StatusReason;
  readonly details: StatusDetails | undefined;

  constructor(reason: StatusReason, message: string, details?: StatusDetails) {
    super(`APISERVER_${reason.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, message);
    this.name = 'StatusError';
    this.reason = reason;
    this.httpCode = HTTP_CODE[reason];
    this.details = details;
  }

  toStatus(): StatusObject {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.httpCode,
    };
  }
}

/** `kind` in details is the resource's plural, as real API servers report it. */
export interface Target {
  group: string;
  plural: string;
  name: string;
}

function qualified(t: Target): string {
  return t.group ? `${t.plural}.${t.group}` : t.plural;
}

export const notFound = (t: Target): StatusError =>
  new StatusError('NotFound', `${qualified(t)} "${t.name}" not found`, {
    name: t.name,
    group: t.group,
    kind: t.plural,
  });

export const alreadyExists = (t: Target): StatusError =>
  new StatusError('AlreadyExists', `${qualified(t)} "${t.name}" already exists`, {
    name: t.name,
    group: t.group,
    kind: t.plural,
  });

export const conflict = (t: Target, why: string): StatusError =>
  new StatusError('Conflict', `Operation cannot be fulfilled on ${qualified(t)} "${t.name}": ${why}`, {
    name: t.name,
    group: t.group,
    kind: t.plural,
  });

export const STALE_OBJECT =
  'the object has been modified; please apply your changes to the latest version and try again';

/** 422 with one cause per bad field; `kind` is the object's Kind here, as in real servers. */
export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): StatusError {
  const list = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  const what = causes.length > 1 ? `[${list}]` : list;
  return new StatusError('Invalid', `${kind} "${name}" is invalid: ${what}`, { name, group, kind, causes });
}

/**
 * apierrors.NewForbidden: `<resource>[.<group>] ["<name>"] is forbidden: <why>`, or `forbidden: <why>`
 * for a path; details leave out what is empty, as the real server's JSON does.
 */
export function forbidden(
  t: { group: string; plural: string; name: string } | undefined,
  why: string,
): StatusError {
  if (!t || t.plural === '') return new StatusError('Forbidden', `forbidden: ${why}`, {});
  const what = t.name ? `${qualified(t)} "${t.name}"` : qualified(t);
  return new StatusError('Forbidden', `${what} is forbidden: ${why}`, {
    ...(t.name ? { name: t.name } : {}),
    ...(t.group ? { group: t.group } : {}),
    kind: t.plural,
  });
}

export const badRequest = (message: string): StatusError => new StatusError('BadRequest', message);

export const unknownPath = (): StatusError =>
  new StatusError('NotFound', 'the server could not find the requested resource', {});

export const methodNotAllowed = (): StatusError =>
  new StatusError('MethodNotAllowed', 'the server does not allow this method on the requested resource', {});

export const expired = (requested: string, oldest: number): StatusError =>
  new StatusError('Expired', `too old resource version: ${requested} (${oldest})`);
