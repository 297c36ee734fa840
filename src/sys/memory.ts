/** The C heap's side of the process's memory: what Node does not let JavaScript reach. */
import { native } from './native.js';

/**
 * Returns the free pages of every malloc arena to the kernel (glibc's malloc_trim(0)). Whether any
 * memory was released; false where the C library has no such call.
 */
export function trimMallocArenas(): boolean {
  return native().mallocTrim();
}
