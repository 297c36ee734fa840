/** The codes `ambit doctor` raises on purpose (printed as `[CODE]`). */
import { type CodedError, codedError } from '../errors.js';

export type DoctorErrorCode =
  | 'ERR_DOCTOR_NOT_ROOT' // the doctor enters network namespaces: it must run as root
  | 'ERR_DOCTOR_TARGET' // the pod or node to examine cannot be found
  | 'ERR_DOCTOR_ADMIN_UNREACHABLE' // ztunnel's admin server does not answer
  | 'ERR_DOCTOR_ADMIN' // ztunnel's admin server answered with an error or not JSON
  | 'ERR_DOCTOR_EXEC' // a command run in a netns failed
  | 'ETIMEDOUT'; // no answer (admin server, API server) within the doctor's timeout

export type DoctorError = CodedError<DoctorErrorCode>;
export const doctorError = codedError<DoctorErrorCode>;
