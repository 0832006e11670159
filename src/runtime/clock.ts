/** An injectable clock, so time-dependent logic (expiry, cooldown, backoff) is testable without sleeping. */
export interface Clock {
  now(): number;
}

/**
 * A clock that can also wake code later. Whatever measures a delay with `now()` and waits
 * it out must take both from the same clock (the work queue does), so that a fake clock
 * moves the deadline and the wake-up together.
 */
export interface TimerClock extends Clock {
  /** Calls `fn` once `delayMs` have passed on this clock, without keeping the process alive; the result cancels it. */
  setTimer(fn: () => void, delayMs: number): () => void;
}

export const systemClock: TimerClock = {
  now: () => Date.now(),
  setTimer(fn, delayMs) {
    const timer = setTimeout(fn, delayMs);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

export function isoNow(clock: Clock): string {
  return new Date(clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
