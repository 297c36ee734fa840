/** The CRDs the lab installs are the chart's (deploy/charts/ambit/templates/base), field for field. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { AUTHORIZATION_POLICY_CRD } from '../../src/lab/cluster/istio-crds.js';

const TEMPLATE = fileURLToPath(
  new URL('../../../deploy/charts/ambit/templates/base/crd-authorizationpolicies.yaml', import.meta.url),
);

test("the lab's AuthorizationPolicy CRD is the chart's", () => {
  // The template's own lines (`{{ ... }}`) are Helm's; what is left is the object.
  const text = readFileSync(TEMPLATE, 'utf8')
    .split('\n')
    .filter((l) => !l.trim().startsWith('{{'))
    .join('\n');
  const chart = parse(text);
  assert.equal(chart.metadata.name, AUTHORIZATION_POLICY_CRD.metadata?.name);
  assert.deepEqual(chart.spec, AUTHORIZATION_POLICY_CRD.spec);
  assert.equal(chart.apiVersion, AUTHORIZATION_POLICY_CRD.apiVersion);
});
