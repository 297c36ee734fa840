/** `ambit demo` runs to completion on the real kernel and leaves nothing behind, even after an earlier crash. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import { labDown, listNetns } from '../../src/lab/index.js';
import { run } from '../helpers/netns.js';
import { ambit } from '../lab/cli.js';

const demoNetns = () => listNetns().filter((ns) => ns.startsWith('ambit-demo-'));

after(async () => {
  await labDown('demo');
});

test('ambit demo proves pod-to-pod TCP across nodes and tears the lab down', async () => {
  // A namespace left by a crashed earlier run must not stop the demo.
  run('ip', ['netns', 'add', 'ambit-demo-n1']);
  const demo = await ambit(['demo']);
  assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
  const out = demo.stdout;
  assert.match(out, /== Removing the demo lab left by an earlier run ==/);
  assert.match(out, /== Topology ==/);
  const sleep = /ambient-demo\/sleep\s+n1\s+(\d+\.\d+\.\d+\.\d+)/.exec(out);
  const httpbin = /ambient-demo\/httpbin\s+n2\s+(\d+\.\d+\.\d+\.\d+)/.exec(out);
  assert.ok(sleep && httpbin, out);
  assert.match(
    out,
    new RegExp(
      `sleep ${sleep[1]} \\(n1\\) -> httpbin ${httpbin[1]}:8000 \\(n2\\): \\d+ bytes sent and echoed back; httpbin saw the client as ${sleep[1]}`,
    ),
  );
  assert.match(out, /Demo finished\./);
  assert.deepEqual(demoNetns(), []);
  assert.equal(existsSync('/var/run/ambit/lab/demo'), false);
});
