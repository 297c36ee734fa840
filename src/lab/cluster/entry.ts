/**
 * Process entry for the lab's own processes: `node entry.js apiserver LAB`, `kubelet LAB NODE`,
 * `httpbin` (the app inside a pod). The agent and ztunnel are started as `ambit agent|ztunnel`.
 */
import { errorCode, errorMessage } from '../../errors.js';
import { nameProcess } from '../../runtime/process-name.js';

async function main(argv: string[]): Promise<number> {
  const [role, lab, node] = argv;
  switch (role) {
    case 'apiserver':
      nameProcess('labApiserver');
      return (await import('./apiserver-process.js')).runApiServerProcess(lab!);
    case 'controlplane':
      nameProcess('controlPlane');
      return (await import('./controlplane-process.js')).runControlPlaneProcess(lab!);
    case 'kubelet':
      nameProcess('labKubelet');
      return (await import('./kubelet.js')).runKubeletProcess(lab!, node!);
    case 'httpbin':
      return (await import('./httpbin.js')).runHttpbin();
    default:
      process.stderr.write(`usage: entry.js apiserver LAB | controlplane LAB | kubelet LAB NODE | httpbin\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(
      `lab ${process.argv[2]}: ${errorMessage(err)}${errorCode(err) ? ` [${errorCode(err)}]` : ''}\n`,
    );
    process.exit(1);
  },
);
