/**
 * Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for (`Accept: ...;as=Table`), with
 * the columns `kubectl get` shows for each kind against a real cluster.
 */
import type { KObject } from './objects.js';
import type { ResourceType } from './resources.js';

interface Column {
  name: string;
  type: 'string' | 'integer';
  format?: string;
  priority?: number;
}

type Cells = (string | number)[];

/** kubectl's short ages: 45s, 3m12s, 25m, 5h3m, 17h, 4d5h, 30d, 2y. */
export function humanAge(fromIso: string | undefined, now = Date.now()): string {
  if (!fromIso) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(fromIso)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
  if (d < 730) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

const str = (v: unknown, dflt = '<none>'): string => (typeof v === 'string' && v !== '' ? v : dflt);
const list = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v : []);

function podCells(o: KObject): Cells {
  const statuses = list(o.status?.['containerStatuses']);
  const total = list(o.spec?.['containers']).length;
  const ready = statuses.filter((c) => c['ready'] === true).length;
  const restarts = statuses.reduce(
    (n, c) => n + (typeof c['restartCount'] === 'number' ? c['restartCount'] : 0),
    0,
  );
  let phase = str(o.status?.['reason'], str(o.status?.['phase'], 'Unknown'));
  if (o.metadata.deletionTimestamp) phase = 'Terminating';
  return [
    ready + '/' + total,
    phase,
    restarts,
    humanAge(o.metadata.creationTimestamp),
    str(o.status?.['podIP']),
    str(o.spec?.['nodeName']),
    '<none>',
    '<none>',
  ];
}

function nodeCells(o: KObject): Cells {
  const ready = list(o.status?.['conditions']).find((c) => c['type'] === 'Ready');
  const status = ready ? (ready['status'] === 'True' ? 'Ready' : 'NotReady') : 'Unknown';
  const roles = Object.keys(o.metadata.labels ?? {})
    .filter((k) => k.startsWith('node-role.kubernetes.io/'))
    .map((k) => k.slice('node-role.kubernetes.io/'.length))
    .join(',');
  const info = (o.status?.['nodeInfo'] ?? {}) as Record<string, unknown>;
  const internal = list(o.status?.['addresses']).find((a) => a['type'] === 'InternalIP');
  return [
    status,
    roles || '<none>',
    humanAge(o.metadata.creationTimestamp),
    str(info['kubeletVersion'], ''),
    str(internal?.['address']),
  ];
}

function serviceCells(o: KObject): Cells {
  const ports = list(o.spec?.['ports'])
    .map((p) => `${p['port']}${p['nodePort'] ? `:${p['nodePort']}` : ''}/${str(p['protocol'], 'TCP')}`)
    .join(',');
  const selector = Object.entries((o.spec?.['selector'] ?? {}) as Record<string, string>)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return [
    str(o.spec?.['type'], 'ClusterIP'),
    str(o.spec?.['clusterIP']),
    '<none>',
    ports || '<none>',
    humanAge(o.metadata.creationTimestamp),
    selector || '<none>',
  ];
}

function endpointsCells(o: KObject): Cells {
  const eps: string[] = [];
  for (const subset of list(o['subsets']))
    for (const a of list(subset['addresses']))
      for (const p of list(subset['ports']).length ? list(subset['ports']) : [{}])
        eps.push(p['port'] ? `${a['ip']}:${p['port']}` : String(a['ip']));
  return [eps.join(',') || '<none>', humanAge(o.metadata.creationTimestamp)];
}

function sliceCells(o: KObject): Cells {
  const ports = list(o['ports'])
    .map((p) => String(p['port']))
    .join(',');
  const addrs = list(o['endpoints']).flatMap((e) => (Array.isArray(e['addresses']) ? e['addresses'] : []));
  return [
    str(o['addressType'], ''),
    ports || '<unset>',
    addrs.join(',') || '<unset>',
    humanAge(o.metadata.creationTimestamp),
  ];
}

const NAME: Column = { name: 'Name', type: 'string', format: 'name' };
const AGE: Column = { name: 'Age', type: 'string' };

const PRINTERS: Record<string, { columns: Column[]; cells: (o: KObject) => Cells }> = {
  pods: {
    columns: [
      NAME,
      { name: 'Ready', type: 'string' },
      { name: 'Status', type: 'string' },
      { name: 'Restarts', type: 'string' },
      AGE,
      { name: 'IP', type: 'string', priority: 1 },
      { name: 'Node', type: 'string', priority: 1 },
      { name: 'Nominated Node', type: 'string', priority: 1 },
      { name: 'Readiness Gates', type: 'string', priority: 1 },
    ],
    cells: podCells,
  },
  namespaces: {
    columns: [NAME, { name: 'Status', type: 'string' }, AGE],
    cells: (o) => [str(o.status?.['phase'], 'Active'), humanAge(o.metadata.creationTimestamp)],
  },
  nodes: {
    columns: [
      NAME,
      { name: 'Status', type: 'string' },
      { name: 'Roles', type: 'string' },
      AGE,
      { name: 'Version', type: 'string' },
      { name: 'Internal-IP', type: 'string', priority: 1 },
    ],
    cells: nodeCells,
  },
  services: {
    columns: [
      NAME,
      { name: 'Type', type: 'string' },
      { name: 'Cluster-IP', type: 'string' },
      { name: 'External-IP', type: 'string' },
      { name: 'Port(s)', type: 'string' },
      AGE,
      { name: 'Selector', type: 'string', priority: 1 },
    ],
    cells: serviceCells,
  },
  endpoints: { columns: [NAME, { name: 'Endpoints', type: 'string' }, AGE], cells: endpointsCells },
  endpointslices: {
    columns: [
      NAME,
      { name: 'AddressType', type: 'string' },
      { name: 'Ports', type: 'string' },
      { name: 'Endpoints', type: 'string' },
      AGE,
    ],
    cells: sliceCells,
  },
};

const DEFAULT_PRINTER = {
  columns: [NAME, AGE],
  cells: (o: KObject): Cells => [humanAge(o.metadata.creationTimestamp)],
};

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

function rowObject(o: KObject, include: IncludeObject): object | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function toTable(
  r: ResourceType,
  objects: KObject[],
  resourceVersion: string,
  include: IncludeObject,
): object {
  const printer = PRINTERS[r.plural] ?? DEFAULT_PRINTER;
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: printer.columns.map((c) => ({ priority: 0, description: '', format: '', ...c })),
    rows: objects.map((o) => {
      const object = rowObject(o, include);
      return { cells: [o.metadata.name, ...printer.cells(o)], ...(object ? { object } : {}) };
    }),
  };
}
