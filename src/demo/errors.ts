/** The codes `ambit demo` raises on purpose. */
import { type CodedError, codedError } from '../errors.js';

export type DemoErrorCode =
  | 'DEMO_NOT_ROOT' // the Kubernetes walkthrough must run as root
  | 'DEMO_NO_CHECKOUT' // the Kubernetes walkthrough needs the repository's scripts
  | 'DEMO_MISSING_TOOL' // a tool the walkthrough runs inside the pods is not installed
  | 'DEMO_NO_POD' // a demo pod has no sandbox
  | 'DEMO_NOT_ENROLLED' // demo pods were not annotated as redirected in time
  | 'DEMO_COMMAND_FAILED'
  | 'DEMO_BAD_CAPTURE' // the packet capture cannot be read
  | 'DEMO_STEP_FAILED' // a walkthrough step failed (the cause says why)
  | 'DEMO_CHECK_FAILED'; // something the walkthrough shows did not happen

export type DemoError = CodedError<DemoErrorCode>;
export const demoError = codedError<DemoErrorCode>;
