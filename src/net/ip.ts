/** IP address text as the kernel and Node report it. */
import { isIPv4 } from 'node:net';

/**
 * `::ffff:10.0.0.2` -> `10.0.0.2`; anything else unchanged. A dual-stack socket reports IPv4 peers in
 * the mapped form, while workloads, rules and policies name them as plain IPv4.
 */
export function unmapIPv4(ip: string): string {
  return /^::ffff:/i.test(ip) && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}
