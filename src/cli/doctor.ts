/** `ambit doctor <ns>/<pod>`: the seed's redirection checks for one pod, PASS/FAIL with the next step. */
import { parseArgs } from 'node:util';
import { doctorError } from '../doctor/errors.js';
import { formatReport, labTarget, nodeTarget, runDoctor } from '../doctor/index.js';
import { chooseLab, listLabs, parsePodRef } from '../lab/index.js';
import { parseBackend, parseInbound } from '../redirect/index.js';
import { parseListenAddress } from '../runtime/listen-address.js';
import { type Command, EXIT_FAILURE, EXIT_OK, UsageError } from './command.js';

const HELP = `Usage: ambit doctor <namespace>/<pod> [options]

Runs the seed's "observing and debugging traffic redirection" checks for one pod:
  ztunnel   ztunnel received the pod's netns and its proxy is Up (admin /config_dump workloadState)
  listeners *:15001, *:15006, *:15008 and 127.0.0.1:15080 exist in the pod and belong to ztunnel
  rules     the in-pod rules equal the expected ruleset (the diff is printed otherwise)
  annotation the pod is annotated ambient.istio.io/redirection=enabled (needs the Kubernetes API)
  probe     a connection from the pod to a TEST-NET address is captured by ztunnel on 15001
Each failure names the likely cause and the command to run next. Exit 0 only when every check
passed; 1 when one failed or could not run (SKIP, with the reason, e.g. no API server).

Where the pod is (default: a lab pod, lab from --lab, $AMBIT_LAB or the only running lab):
  --lab NAME              the lab the pod runs in
  --netns PATH            a pod on a real node: its network namespace
  --pid PID               ... or a process of the pod (uses /proc/PID/ns/net)
  --node-netns PATH       the netns ztunnel's admin server listens in (default: this one)
  --uid UID               the pod UID ztunnel knows it by (default: match namespace/name)
Options:
  --ztunnel-admin ADDR    ztunnel's admin address (default localhost:15000)
  --kubeconfig PATH       Kubernetes API for the annotation check (default: the lab's, or $KUBECONFIG)
  --backend iptables|nftables, --inbound tproxy|redirect   the expected ruleset (default iptables, tproxy)
  --probe HOST:PORT       probe destination (default 192.0.2.1:9, TEST-NET-1: nothing answers there;
                          for a lab pod with only IPv6, [2001:db8::1]:9 of the documentation prefix)
  --json                  the report as JSON
  -h, --help
Needs root (it enters network namespaces).
`;

const doctor: Command = {
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        lab: { type: 'string' },
        netns: { type: 'string' },
        pid: { type: 'string' },
        'node-netns': { type: 'string' },
        uid: { type: 'string' },
        'ztunnel-admin': { type: 'string', default: 'localhost:15000' },
        kubeconfig: { type: 'string' },
        backend: { type: 'string', default: 'iptables' },
        inbound: { type: 'string', default: 'tproxy' },
        probe: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    if (positionals.length !== 1)
      throw new UsageError('expected one pod as <namespace>/<name>, e.g. ambient-demo/sleep');
    const pod = parsePodRef(positionals[0]!);
    if (values.pid !== undefined && !/^\d+$/.test(values.pid))
      throw new UsageError(`--pid ${values.pid}: expected a process id`);
    const probe = values.probe === undefined ? undefined : parseListenAddress(values.probe, '--probe');
    const common = {
      pod,
      admin: parseListenAddress(values['ztunnel-admin'], '--ztunnel-admin'),
      kubeconfig: values.kubeconfig,
      backend: parseBackend(values.backend),
      inbound: parseInbound(values.inbound),
      probe: probe && { host: probe.host, port: probe.port },
    };
    if (process.getuid?.() !== 0)
      throw doctorError(
        'ERR_DOCTOR_NOT_ROOT',
        'ambit doctor enters network namespaces: run it as root (sudo)',
      );
    const onNode = values.netns !== undefined || values.pid !== undefined;
    if (onNode && values.lab !== undefined)
      throw new UsageError('--lab cannot be combined with --netns or --pid');
    const target = onNode
      ? nodeTarget({
          ...common,
          netns: values.netns,
          pid: values.pid === undefined ? undefined : Number(values.pid),
          nodeNetns: values['node-netns'],
          uid: values.uid,
        })
      : labTarget({ ...common, lab: chooseLab(values.lab, process.env.AMBIT_LAB, listLabs()) });
    const report = await runDoctor(target);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    return report.ok ? EXIT_OK : EXIT_FAILURE;
  },
};

export default doctor;
