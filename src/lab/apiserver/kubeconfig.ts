/** A kubeconfig for the lab API server that kubectl and @kubernetes/client-node both read. */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { stringify } from 'yaml';

export const LAB_CONTEXT = 'ambit-lab';

/** `user` names the credential in the file (the admin's unless given). */
export function kubeconfigYaml(
  server: string,
  token: string,
  caPem: string,
  namespace = 'default',
  user = `${LAB_CONTEXT}-admin`,
): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: LAB_CONTEXT,
        cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') },
      },
    ],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: LAB_CONTEXT, context: { cluster: LAB_CONTEXT, user, namespace } }],
    'current-context': LAB_CONTEXT,
    preferences: {},
  });
}

/** Written 0600 (it holds a token) and atomically, so a reader never sees half a file. */
export function writeKubeconfig(
  path: string,
  server: string,
  token: string,
  caPem: string,
  user?: string,
): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, kubeconfigYaml(server, token, caPem, 'default', user), { mode: 0o600 });
  renameSync(tmp, path);
}
