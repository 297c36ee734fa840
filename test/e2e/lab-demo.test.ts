/** `ambit demo` runs to completion on the real kernel and leaves nothing behind, even after an earlier crash. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { after, describe, test } from 'node:test';
import { labDown, listNetns, loadLab } from '../../src/lab/index.js';
import { listenInNetns, NetnsHandle } from '../../src/sys/index.js';
import { run } from '../helpers/netns.js';
import { ambit } from '../lab/cli.js';

const demoNetns = () => listNetns().filter((ns) => ns.startsWith('ambit-demo-'));

describe('ambit demo', () => {
  after(async () => {
    await labDown('demo');
  });

  test('proves pod-to-pod TCP across nodes and tears the lab down, after clearing a crashed run', async () => {
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
        `sleep ${sleep[1]} \\(n1\\) -> httpbin ${httpbin[1]}:8000 \\(n2\\): \\d+ bytes sent and echoed back; ` +
          `httpbin saw the client as ${sleep[1]}`,
      ),
    );
    assert.match(out, /Demo finished\./);
    assert.deepEqual(demoNetns(), []);
    assert.equal(existsSync('/var/run/ambit/lab/demo'), false);
  });

  test("--keep leaves the lab for the seed's `lab exec ambient-demo/sleep -- ss -ntlp`", async () => {
    const demo = await ambit(['demo', '--keep']);
    assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
    assert.match(demo.stdout, /ambit lab exec --name demo ambient-demo\/sleep -- ss -ntlp/);
    const sleep = loadLab('demo').pods.find((p) => p.name === 'sleep')!;
    const netns = NetnsHandle.open(sleep.netnsPath);
    let server: Server | undefined;
    try {
      server = await listenInNetns(netns, { port: 15008 });
      const ss = await ambit(['lab', 'exec', 'ambient-demo/sleep', '--', 'ss', '-ntlp'], {
        env: { AMBIT_LAB: 'demo' },
      });
      assert.equal(ss.code, 0, ss.stderr);
      assert.match(ss.stdout, /LISTEN\s+0\s+128\s+\*:15008\s+\*:\*/);
    } finally {
      server?.close();
      netns.close();
    }
    const down = await ambit(['lab', 'down', '--name', 'demo']);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(demoNetns(), []);
  });
});
