/**
 * Every error ambit raises on purpose carries a stable `code` (an errno name for syscalls,
 * an upper-snake identifier otherwise) so callers branch on codes, never on message text.
 */
export class AmbitError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AmbitError';
    this.code = code;
  }
}

/** An AmbitError whose code is one of a module's declared codes (`type XErrorCode = 'ERR_A' | ...`). */
export type CodedError<C extends string> = AmbitError & { readonly code: C };

/** Raises with a code the compiler checks: `export const xError = codedError<XErrorCode>;` per module. */
export function codedError<C extends string>(
  code: C,
  message: string,
  options?: { cause?: unknown },
): CodedError<C> {
  return new AmbitError(code, message, options) as CodedError<C>;
}

/**
 * A failure that says whether trying again later can help: the agent's queue retries it with backoff,
 * or logs and drops it. Each module names its codes in a union (`RetryableError<ZdsErrorCode>`).
 */
export class RetryableError<Code extends string = string> extends AmbitError {
  declare readonly code: Code;
  readonly retryable: boolean;

  constructor(code: Code, message: string, options: { retryable: boolean; cause?: unknown }) {
    super(code, message, { cause: options.cause });
    this.name = 'RetryableError';
    this.retryable = options.retryable;
  }
}

/** Errors without a retryable flag are retried: an unknown failure may well be transient. */
export function isRetryable(err: unknown): boolean {
  return !(err instanceof RetryableError) || err.retryable;
}

/** The `code` of anything thrown, when it has one (AmbitError, Node system errors). */
export function errorCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
