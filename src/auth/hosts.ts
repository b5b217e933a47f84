import type { Config } from '../config.js';

/**
 * Which addresses and Host names count as "this machine only". Authentication may be off only for a
 * service bound to loopback, and then only for requests that name a loopback host: a web page the
 * operator visits can point its own DNS name at 127.0.0.1 (DNS rebinding) and would otherwise be
 * same-origin with the service. The Host header is what such a page cannot forge.
 */

/** A bind address (HOST) that only this machine can reach. */
export function isLoopbackAddress(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The host name of a Host header, lower-cased, without its port; undefined when it is not a valid one. */
function hostName(header: string | undefined): string | undefined {
  if (!header || header.length > 255) return undefined;
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(header);
  return m?.[1]?.toLowerCase();
}

/** Whether a request's Host header names this machine, or one of the extra names configured. */
export function hostAllowed(header: string | undefined, extra: readonly string[]): boolean {
  const name = hostName(header);
  if (name === undefined) return false;
  return isLoopbackAddress(name) || extra.includes(name.replace(/\.$/, ''));
}

/**
 * Authentication is on from the start when asked for, or when the service is reachable from other
 * machines: there, only ALLOW_UNAUTHENTICATED=true lets it start off (and it still switches on, for
 * good, with the first credential).
 */
export function authRequiredFromStart(config: Pick<Config, 'AUTH' | 'HOST' | 'ALLOW_UNAUTHENTICATED'>): boolean {
  return config.AUTH === 'required' || (!isLoopbackAddress(config.HOST) && !config.ALLOW_UNAUTHENTICATED);
}
