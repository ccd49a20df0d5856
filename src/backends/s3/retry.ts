import { BackendError } from '../errors.js';
import { isRetryable } from './errors.js';

export interface RetryOptions {
  /** Total time for every attempt together, in ms. */
  totalMs: number;
  /** First backoff, in ms; doubled each time, up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * Runs `attempt` until it succeeds, fails with an error that is not
 * retryable (errors.ts), or the total time runs out: exponential backoff with
 * full jitter between attempts. Each attempt gets an AbortSignal that fires
 * at the deadline, so a hung server cannot hold an operation past it.
 */
export async function withRetries<T>(attempt: (signal: AbortSignal) => Promise<T>, options: RetryOptions, describe: (err: unknown) => BackendError): Promise<T> {
  const deadline = Date.now() + options.totalMs;
  const base = options.baseDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  for (let n = 0; ; n += 1) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - Date.now()));
    try {
      return await attempt(controller.signal);
    } catch (err) {
      const timedOut = controller.signal.aborted;
      if (!timedOut && !isRetryable(err)) throw describe(err);
      const delay = Math.random() * Math.min(max, base * 2 ** n);
      if (timedOut || Date.now() + delay >= deadline) {
        const last = describe(err);
        throw new BackendError('unavailable', `${last.message}${timedOut ? '' : ''} (gave up after ${Math.round(options.totalMs / 100) / 10} s and ${n + 1} attempt${n === 0 ? '' : 's'})`, { cause: err });
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    } finally {
      clearTimeout(timer);
    }
  }
}
