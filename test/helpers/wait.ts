/**
 * Waiting for a condition, never for a fixed time: `fn` is polled until it returns something truthy (or
 * stops throwing); on the deadline the last error (or `message`) is thrown, so a failing wait says what
 * it was waiting for.
 */
export interface WaitOptions {
  timeout?: number;
  interval?: number;
  message?: string;
}

export async function waitFor<T>(fn: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const { timeout = 10_000, interval = 25, message = 'condition not met' } = options;
  const deadline = Date.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      if (lastError instanceof Error) {
        lastError.message = `${message} within ${timeout} ms: ${lastError.message}`;
        throw lastError;
      }
      throw new Error(`${message} within ${timeout} ms`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A pause that is the point of the test (letting writes pile up), not a wait for a condition. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `promise`'s value, or `fallback` after `ms`; the timer is cleared either way (no stray timers). */
export async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
