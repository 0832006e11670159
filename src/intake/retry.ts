/**
 * Bounded retries of Kubernetes API calls for the intake. A sender (Alertmanager, SNS) is
 * waiting on the answer, so retries are bounded by a time budget, not a count: within
 * it, transient failures (connection refused or reset, timeouts, 429, 5xx) are retried
 * with exponential backoff and jitter, honouring `Retry-After`; past it the call fails
 * with ApiUnavailableError and the intake answers 503, which both senders retry.
 * Everything else (403, 404, 409, 422) is an answer, returned at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException } from '@kubernetes/client-node';
import { ApiUnavailableError } from './errors.js';

export interface RetryOptions {
  /** Total time allowed for all attempts, in ms. */
  budgetMs: number;
  /** Longest a single call may take before it counts as failed, in ms. */
  callTimeoutMs?: number;
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** Told about each retry, for metrics and logs. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

export function statusOf(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

/** Transient: a network failure (no HTTP status), a timeout, or a status that means "try again". */
export function isTransient(error: unknown): boolean {
  if (error instanceof CallTimeoutError) return true;
  if (error instanceof ApiException) return RETRYABLE_STATUS.has(error.code);
  // undici reports network failures as TypeError('fetch failed') with the system error
  // (ECONNREFUSED, ECONNRESET, ...) as its cause. Other errors are bugs: not retried.
  if (!(error instanceof Error)) return false;
  const cause = (error as Error & { cause?: { code?: unknown } }).cause;
  return (
    error.message === 'fetch failed' || typeof cause?.code === 'string' || typeof (error as Error & { code?: unknown }).code === 'string'
  );
}

export class CallTimeoutError extends Error {
  constructor(ms: number) {
    super(`the Kubernetes API did not answer within ${ms} ms`);
    this.name = 'CallTimeoutError';
  }
}

function retryAfterMs(error: unknown): number | undefined {
  if (!(error instanceof ApiException)) return undefined;
  const headers = error.headers as Record<string, string> | undefined;
  const v = headers?.['retry-after'];
  const s = v === undefined ? NaN : Number(v);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}

async function withTimeout<T>(call: () => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      call(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CallTimeoutError(ms)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function withRetry<T>(what: string, call: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const deadline = Date.now() + opts.budgetMs;
  const first = opts.firstDelayMs ?? 100;
  const max = opts.maxDelayMs ?? 1_000;
  for (let attempt = 1; ; attempt++) {
    // The last attempt, made at the deadline, still gets a fair chance to answer.
    const timeout = Math.max(250, Math.min(opts.callTimeoutMs ?? 5_000, deadline - Date.now()));
    try {
      return await withTimeout(call, timeout);
    } catch (error) {
      if (!isTransient(error)) throw error;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ApiUnavailableError(
          `${what}: the Kubernetes API is unavailable (${describeError(error)}) after ${attempt} attempt(s) in ${opts.budgetMs} ms`,
          error,
        );
      }
      const backoff = Math.min(max, first * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
      const delay = Math.min(remaining, Math.max(backoff, retryAfterMs(error) ?? 0));
      opts.onRetry?.(error, attempt, delay);
      await sleep(delay);
    }
  }
}

export function describeError(error: unknown): string {
  if (error instanceof ApiException) {
    const body = error.body as { message?: unknown } | string | undefined;
    let message: string | undefined;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: unknown };
        if (typeof parsed.message === 'string') message = parsed.message;
      } catch {
        message = body.slice(0, 300);
      }
    } else if (body && typeof body.message === 'string') message = body.message;
    return `HTTP ${error.code}${message ? `: ${message}` : ''}`;
  }
  if (error instanceof Error) {
    const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? error.message;
  }
  return String(error);
}
