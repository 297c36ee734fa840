/**
 * The seed's "Observing and debugging traffic redirection", one function per check, each run
 * against the demo cluster: print what a user would see, then assert what the seed says it shows.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { formatReport, labTarget, runDoctor } from '../doctor/index.js';
import { errorMessage } from '../errors.js';
import { formatAuthority } from '../hbone/headers.js';
import { startCapture } from '../lab/capture.js';
import { execIn } from '../lab/system.js';
import { INBOUND_HBONE_PORT } from '../node/contract.js';
import { parseBackend, parseInbound } from '../redirect/index.js';
import { ambitCommand } from '../runtime/invocation.js';
import { parseListenAddress } from '../runtime/listen-address.js';
import { type DemoCluster, ztunnelPid } from './cluster.js';
import { readPcap, streamsOf } from './pcap.js';
import { expect, type Walkthrough } from './walkthrough.js';

const execFileAsync = promisify(execFile);
const HTTPBIN_PORT = 8000;
const ACCESS_LOG_TIMEOUT_MS = 30_000;
const SERVICE_ACCOUNT = (ns: string) => `spiffe://cluster.local/ns/${ns}/sa/default`;

const podName = (c: DemoCluster, pod: 'sleep' | 'httpbin') => `${c[pod].ref.namespace}/${c[pod].ref.name}`;

function ztunnelLog(c: DemoCluster, node: string): string {
  return readFileSync(c.layout.logFile({ component: 'ztunnel', node }), 'utf8');
}

/** (a) `kubectl logs ds/ztunnel | grep inpod`: in-pod mode on, the pod's netns received, its proxy started. */
export function inpodLogs(c: DemoCluster, w: Walkthrough): void {
  for (const pod of [c.sleep, c.httpbin]) {
    w.command(`${ambitCommand()} lab logs ztunnel --node ${pod.node} | grep inpod`);
    const lines = ztunnelLog(c, pod.node)
      .split('\n')
      .filter((l) => l.includes('inpod'));
    w.output(lines.join('\n'));
    const text = lines.join('\n');
    for (const expected of [
      'inpod_enabled: true',
      'inpod_uds: ',
      'inpod_port_reuse: true',
      'inpod_mark: 1337',
      'ztunnel::inpod::workloadmanager: handling new stream',
      `pod WorkloadUid("${pod.uid}") received netns, starting proxy`,
      'pod received snapshot sent',
    ]) {
      expect(text.includes(expected), `ztunnel on ${pod.node} logged no '${expected}'`);
    }
  }
}

/** (b) `ss -ntlp` in the sleep pod: the seed's four listeners, owned by the node's ztunnel. */
export function sockets(c: DemoCluster, w: Walkthrough): void {
  w.command(`${ambitCommand()} lab exec ${podName(c, 'sleep')} -- ss -ntlp`);
  const ss = execIn(c.sleep.netns, 'ss', ['-ntlp']);
  w.output(ss);
  const pid = ztunnelPid(c.lab, c.sleep.node);
  for (const address of ['*:15001', '*:15006', '*:15008', '127.0.0.1:15080']) {
    const line = ss.split('\n').find((l) => l.split(/\s+/)[3] === address);
    expect(line, `no listener on ${address} in the sleep pod`);
    expect(
      pid !== undefined && line.includes(`pid=${pid},`),
      `${address} is not owned by ztunnel on ${c.sleep.node} (pid ${pid ?? 'not running'}): ${line}`,
    );
  }
  w.line(`\nAll four belong to ztunnel (pid ${pid}), which runs in ${c.sleep.node}'s network namespace,`);
  w.line('not in the pod: it opened them there with the netns file descriptor the agent sent.');
}

/** (c) `iptables-save` in the sleep pod: the ISTIO_ chains of the mangle and nat tables. */
export function rules(c: DemoCluster, w: Walkthrough): void {
  // The family the demo's request uses: an IPv6 lab's pods get the same ISTIO chains in ip6tables.
  const save = isIPv6(c.sleep.ip) ? 'ip6tables-save' : 'iptables-save';
  w.command(`${ambitCommand()} lab exec ${podName(c, 'sleep')} -- ${save}`);
  const saved = execIn(c.sleep.netns, save, []);
  w.output(saved);
  for (const [pattern, what] of [
    [/^:ISTIO_PRERT - /m, 'the ISTIO_PRERT chain (mangle)'],
    [/^:ISTIO_OUTPUT - /m, 'the ISTIO_OUTPUT chains'],
    [/^-A ISTIO_PRERT .*--dport 15008 .*-j TPROXY --on-port 15008 /m, 'inbound HBONE to 15008'],
    [/^-A ISTIO_PRERT .*-j TPROXY --on-port 15006 /m, 'inbound plaintext to 15006'],
    [/^-A ISTIO_OUTPUT .*-j REDIRECT --to-ports 15001$/m, 'outbound to 15001'],
  ] as const) {
    expect(pattern.test(saved), `${save} in the sleep pod shows no rule for ${what}`);
  }
}

interface HttpbinEcho {
  origin?: string;
  data?: string;
  headers?: Record<string, string>;
}

/** curl inside the sleep pod (asynchronous, so a running capture keeps draining meanwhile). */
async function curl(c: DemoCluster, args: string[]): Promise<HttpbinEcho> {
  let text: string;
  try {
    ({ stdout: text } = await execFileAsync(
      'ip',
      ['netns', 'exec', c.sleep.netns, 'curl', '-sS', '--max-time', '10', ...args],
      { encoding: 'utf8' },
    ));
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`curl in the sleep pod failed: ${stderr || errorMessage(err)}`);
  }
  try {
    return JSON.parse(text) as HttpbinEcho;
  } catch {
    throw new Error(`httpbin answered something that is not JSON: ${text.slice(0, 200)}`);
  }
}

/** IPv6 in brackets, as a URL and an access log's `dst.hbone_addr` write it. */
const httpbinAddress = (c: DemoCluster) => formatAuthority(c.httpbin.ip, HTTPBIN_PORT);
const httpbinUrl = (c: DemoCluster, path: string) => `http://${httpbinAddress(c)}${path}`;

/** (d) sleep -> httpbin: GET /get and POST /post succeed through both ztunnels. */
export async function request(c: DemoCluster, w: Walkthrough): Promise<void> {
  w.command(`${ambitCommand()} lab exec ${podName(c, 'sleep')} -- curl -sS ${httpbinUrl(c, '/get')}`);
  const get = await curl(c, [httpbinUrl(c, '/get')]);
  w.output(JSON.stringify(get, null, 2));
  expect(
    get.origin?.endsWith(c.sleep.ip),
    `httpbin saw the client as ${get.origin}, not sleep ${c.sleep.ip}`,
  );

  const body = 'hello httpbin, from sleep';
  w.command(
    `${ambitCommand()} lab exec ${podName(c, 'sleep')} -- curl -sS --data-binary '${body}' ${httpbinUrl(c, '/post')}`,
  );
  const post = await curl(c, [
    '-H',
    'content-type: text/plain',
    '--data-binary',
    body,
    httpbinUrl(c, '/post'),
  ]);
  w.output(JSON.stringify(post, null, 2));
  expect(post.data === body, `httpbin echoed ${JSON.stringify(post.data)}, not the body sent`);
  w.line(`\nhttpbin saw the client as ${post.origin}: sleep's own address, kept across the tunnel.`);
}

/** Where each ztunnel log ends now, so the next step reads only the lines of its own request. */
export type LogMarks = Map<string, number>;

function logMarks(c: DemoCluster): LogMarks {
  return new Map(
    [c.sleep.node, c.httpbin.node].map((n) => [
      n,
      statSync(c.layout.logFile({ component: 'ztunnel', node: n })).size,
    ]),
  );
}

/** (e) A capture on sleep's eth0 during a request with a unique marker: TCP to 15008, TLS, no marker. */
export async function encrypted(c: DemoCluster, w: Walkthrough): Promise<LogMarks> {
  const marker = `ambit-demo-secret-${randomBytes(8).toString('hex')}`;
  w.command(`${ambitCommand()} lab exec ${podName(c, 'sleep')} -- tcpdump -i eth0 -nn -w - tcp   # while:`);
  w.command(
    `${ambitCommand()} lab exec ${podName(c, 'sleep')} -- curl -sS --data-binary '${marker}' ${httpbinUrl(c, '/post')}`,
  );
  const capture = await startCapture(c.sleep.netns, 'eth0', 'tcp');
  const marks = logMarks(c);
  let echo: HttpbinEcho | undefined;
  let failure: unknown;
  try {
    echo = await curl(c, ['-H', 'content-type: text/plain', '--data-binary', marker, httpbinUrl(c, '/post')]);
  } catch (err) {
    failure = err;
  }
  const pcap = await capture.stop();
  if (failure !== undefined) throw failure;
  expect(echo?.data === marker, `httpbin echoed ${JSON.stringify(echo?.data)}, not the marker sent`);
  w.line(`httpbin received and echoed the body '${marker}'. What crossed sleep's eth0:`);
  const shown = spawnSync('tcpdump', ['-r', '-', '-nn', '-c', '8'], { input: pcap, encoding: 'utf8' });
  if (shown.status === 0) w.output(shown.stdout);

  const { segments } = readPcap(pcap);
  expect(segments.length > 0, 'the capture holds no TCP packet at all');
  const stray = segments.filter((s) => s.srcPort !== INBOUND_HBONE_PORT && s.dstPort !== INBOUND_HBONE_PORT);
  expect(
    stray.length === 0,
    `${stray.length} TCP packets not to or from port ${INBOUND_HBONE_PORT}, e.g. ${stray[0]?.src}:${stray[0]?.srcPort} > ${stray[0]?.dst}:${stray[0]?.dstPort}`,
  );
  const streams = streamsOf(segments).filter((s) => s.bytes > 0);
  expect(streams.length >= 2, 'the capture holds no payload in both directions');
  w.line('\nThe same capture, read as TLS records:');
  for (const s of streams) {
    const records = s.tls
      ? Object.entries(s.tls)
          .map(([type, n]) => `${n} ${type}`)
          .join(', ')
      : 'NOT TLS';
    w.output(`${s.from}:${s.fromPort} > ${s.to}:${s.toPort}  ${s.bytes} bytes  TLS records: ${records}`);
    expect(s.tls, `the bytes ${s.from}:${s.fromPort} > ${s.to}:${s.toPort} are not a chain of TLS records`);
  }
  expect(
    streams.some((s) => s.toPort === INBOUND_HBONE_PORT && (s.tls?.['application_data'] ?? 0) > 0),
    `no TLS application data towards port ${INBOUND_HBONE_PORT}`,
  );
  for (const text of [marker, 'POST /post', 'hello httpbin']) {
    expect(!pcap.includes(text), `the capture contains '${text}' in plain text`);
    w.line(`'${text}' in the capture: no`);
  }
  w.line(
    `Every TCP packet on the wire is HBONE to port ${INBOUND_HBONE_PORT}, mutual TLS: the app never knew.`,
  );
  return marks;
}

function accessLines(c: DemoCluster, node: string, from: number): string[] {
  const log = readFileSync(c.layout.logFile({ component: 'ztunnel', node }))
    .subarray(from)
    .toString('utf8');
  return log
    .split('\n')
    .filter(
      (l) =>
        l.includes('\taccess\tconnection complete\t') && l.includes(`dst.hbone_addr=${httpbinAddress(c)}`),
    );
}

/** (f) Both ztunnels' `connection complete` lines for that request, with the peer identities. */
export async function accessLog(c: DemoCluster, w: Walkthrough, marks: LogMarks): Promise<void> {
  const ends = [
    { pod: c.sleep, direction: 'outbound' },
    { pod: c.httpbin, direction: 'inbound' },
  ];
  const deadline = Date.now() + ACCESS_LOG_TIMEOUT_MS;
  const found = (node: string, direction: string) =>
    accessLines(c, node, marks.get(node) ?? 0).filter((l) => l.includes(`direction="${direction}"`));
  while (ends.some((e) => found(e.pod.node, e.direction).length === 0) && Date.now() < deadline)
    await sleep(100);
  const identity = SERVICE_ACCOUNT(c.sleep.ref.namespace);
  for (const { pod, direction } of ends) {
    w.command(
      `${ambitCommand()} lab logs ztunnel --node ${pod.node} | grep 'connection complete'   # ${direction}, on ${pod.node}`,
    );
    const lines = found(pod.node, direction);
    expect(
      lines.length > 0,
      `ztunnel on ${pod.node} logged no ${direction} 'connection complete' for the request`,
    );
    w.output(lines.join('\n'));
    for (const line of lines) {
      // ztunnel logs the identities only for mutual TLS: their presence is the proof.
      for (const field of [`src.identity="${identity}"`, `dst.identity="${identity}"`]) {
        expect(line.includes(field), `the ${direction} access line on ${pod.node} has no ${field}: ${line}`);
      }
    }
  }
}

/** (g) `${ambitCommand()} doctor ambient-demo/sleep`: the checks above, automated. */
export async function doctor(c: DemoCluster, w: Walkthrough): Promise<void> {
  w.command(`${ambitCommand()} doctor --lab ${c.lab} ${podName(c, 'sleep')}`);
  const report = await runDoctor(
    labTarget({
      lab: c.lab,
      pod: c.sleep.ref,
      admin: parseListenAddress('localhost:15000', 'ztunnel admin'),
      backend: parseBackend('iptables'),
      inbound: parseInbound('tproxy'),
    }),
  );
  w.output(formatReport(report));
  const failed = report.checks.filter((ch) => ch.status === 'fail').map((ch) => ch.id);
  expect(report.ok, `doctor check(s) failed: ${failed.join(', ')}`);
}
