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

/** The `code` of anything thrown, when it has one (AmbitError, Node system errors). */
export function errorCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
