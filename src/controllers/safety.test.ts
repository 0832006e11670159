import type { ExecutionRecord } from '../api/ledger/v1.js';
import type { AlertPolicy } from '../api/v1alpha1/index.js';
import { circuitState, cooldownBlock, insideMaintenanceWindow, maintenanceBlock, rateLimitBlock, validateSafety } from './safety.js';

const T0 = Date.parse('2026-11-21T10:00:00Z'); // a Saturday

function policy(safety: NonNullable<AlertPolicy['spec']['safety']>, annotations: Record<string, string> = {}): AlertPolicy {
  return {
    metadata: { name: 'p', namespace: 'ns', annotations },
    spec: { targets: {}, runbookRef: { name: 'rb' }, safety },
  };
}

function finished(uid: string, outcome: 'Succeeded' | 'Failed', endedAt: string, targets = ['i-00000001']): ExecutionRecord {
  return { uid, request: `r-${uid}`, targets, at: Date.parse(endedAt) - 60_000, outcome, endedAt: Date.parse(endedAt) };
}

describe('cooldown and rate limit', () => {
  const records: ExecutionRecord[] = [
    { uid: 'a', request: 'same-name', targets: ['i-00000001'], at: T0 - 5 * 60_000 },
    { uid: 'b', request: 'b', targets: ['i-00000002'], at: T0 - 50 * 60_000 },
  ];

  test('cooldown blocks only overlapping targets within the period, and never the request itself', () => {
    const p = policy({ cooldown: '10m' });
    expect(cooldownBlock(p, 'new', ['i-00000001'], records, T0)).toContain('i-00000001');
    expect(cooldownBlock(p, 'new', ['i-00000002'], records, T0)).toBeUndefined();
    expect(cooldownBlock(p, 'a', ['i-00000001'], records, T0)).toBeUndefined();
    expect(cooldownBlock(policy({}), 'new', ['i-00000001'], records, T0)).toBeUndefined();
  });

  test('a request recreated under the same name is another request (its UID differs)', () => {
    expect(cooldownBlock(policy({ cooldown: '10m' }), 'uid-of-the-recreated-one', ['i-00000001'], records, T0)).toContain(
      'remediated by same-name',
    );
  });

  test('the rate limit counts executions in the sliding window', () => {
    expect(rateLimitBlock(policy({ rateLimit: { maxExecutions: 1, window: '10m' } }), 'new', records, T0)).toContain('rate limit is 1');
    expect(rateLimitBlock(policy({ rateLimit: { maxExecutions: 2, window: '10m' } }), 'new', records, T0)).toBeUndefined();
    expect(rateLimitBlock(policy({ rateLimit: { maxExecutions: 2, window: '1h' } }), 'new', records, T0)).toContain('2 time(s)');
  });
});

describe('circuit breaker', () => {
  const history = [
    finished('r1', 'Succeeded', '2026-11-21T09:00:00Z'),
    finished('r2', 'Failed', '2026-11-21T09:10:00Z'),
    finished('r3', 'Failed', '2026-11-21T09:20:00Z'),
    finished('r4', 'Failed', '2026-11-21T09:30:00Z'),
    { uid: 'running', request: 'running', targets: [], at: T0 },
  ];

  test('opens after N consecutive failures and names how to resume', () => {
    const s = circuitState(policy({ circuitBreaker: { maxConsecutiveFailures: 3 } }), history, T0);
    expect(s).toMatchObject({ consecutiveFailures: 3, open: true, openedAt: '2026-11-21T09:30:00Z' });
    expect(s.message).toContain('kubectl remediator resume p');
    expect(circuitState(policy({ circuitBreaker: { maxConsecutiveFailures: 4 } }), history, T0).open).toBe(false);
  });

  test('a success its verification found ineffective counts as a failure; a verified one closes the run', () => {
    const ineffective = { ...finished('r5', 'Succeeded', '2026-11-21T09:40:00Z'), verified: false };
    const p = policy({ circuitBreaker: { maxConsecutiveFailures: 4 } });
    expect(circuitState(p, [...history, ineffective], T0)).toMatchObject({ consecutiveFailures: 4, open: true });
    expect(circuitState(p, [...history, { ...ineffective, verified: true }], T0)).toMatchObject({ consecutiveFailures: 0, open: false });
  });

  test('a success closes the run; a person resets it with the annotation', () => {
    expect(circuitState(policy({ circuitBreaker: { maxConsecutiveFailures: 1 } }), history.slice(0, 1), T0).open).toBe(false);
    const reset = policy({ circuitBreaker: { maxConsecutiveFailures: 2 } }, { 'remediator.dev/circuit-reset-at': '2026-11-21T09:25:00Z' });
    expect(circuitState(reset, history, T0)).toMatchObject({ consecutiveFailures: 1, open: false });
  });

  test('a reset time in the future is ignored: it cannot switch the breaker off for good', () => {
    const far = policy({ circuitBreaker: { maxConsecutiveFailures: 2 } }, { 'remediator.dev/circuit-reset-at': '9999-12-31T00:00:00Z' });
    expect(circuitState(far, history, T0)).toMatchObject({ consecutiveFailures: 3, open: true });
    // An hour ahead of the controller's clock is the future too (beyond clock skew).
    const ahead = policy(
      { circuitBreaker: { maxConsecutiveFailures: 2 } },
      { 'remediator.dev/circuit-reset-at': new Date(T0 + 3_600_000).toISOString() },
    );
    expect(circuitState(ahead, history, T0).open).toBe(true);
  });

  test('once recorded open it stays open whatever the policy says later, until a trusted reset after the opening', () => {
    const opened = Date.parse('2026-11-21T09:30:00Z');
    // An editor removed the breaker, or raised its limit, after it opened: still open.
    expect(circuitState(policy({}), history, T0, true, opened)).toMatchObject({ open: true, openedAt: '2026-11-21T09:30:00Z' });
    expect(circuitState(policy({ circuitBreaker: { maxConsecutiveFailures: 100 } }), history, T0, true, opened).open).toBe(true);
    // A reset from before the opening does not close it; one after it does, if trusted.
    const before = policy({}, { 'remediator.dev/circuit-reset-at': '2026-11-21T09:25:00Z' });
    expect(circuitState(before, history, T0, true, opened).open).toBe(true);
    const after = policy({}, { 'remediator.dev/circuit-reset-at': '2026-11-21T09:35:00Z' });
    expect(circuitState(after, history, T0, true, opened).open).toBe(false);
    expect(circuitState(after, history, T0, false, opened).open).toBe(true);
  });

  test('an untrusted reset (no admission policy guarding the approver verb) is ignored', () => {
    const reset = policy({ circuitBreaker: { maxConsecutiveFailures: 2 } }, { 'remediator.dev/circuit-reset-at': '2026-11-21T09:25:00Z' });
    expect(circuitState(reset, history, T0, false)).toMatchObject({ consecutiveFailures: 3, open: true });
    expect(circuitState(reset, history, T0, true)).toMatchObject({ consecutiveFailures: 1, open: false });
  });
});

describe('maintenance windows', () => {
  const saturdayNight = { schedule: '0 2 * * 6', duration: '4h', timeZone: 'Europe/Berlin' };

  test('windows open on their cron schedule in their time zone, for their duration', () => {
    const p = policy({ maintenanceWindows: { mode: 'OnlyDuring', windows: [saturdayNight] } });
    // 02:00 Berlin on 2026-11-21 is 01:00 UTC.
    expect(insideMaintenanceWindow(p, Date.parse('2026-11-21T01:00:00Z'))).toBe(true);
    expect(insideMaintenanceWindow(p, Date.parse('2026-11-21T04:59:59Z'))).toBe(true);
    expect(insideMaintenanceWindow(p, Date.parse('2026-11-21T05:00:00Z'))).toBe(false);
    expect(insideMaintenanceWindow(p, Date.parse('2026-11-21T00:59:00Z'))).toBe(false);
    // Held until the next opening: 02:00 Berlin on Saturday 2026-11-28.
    expect(maintenanceBlock(p, T0)).toEqual({
      message: expect.stringContaining('outside every maintenance window'),
      until: Date.parse('2026-11-28T01:00:00Z'),
    });
  });

  test('NeverDuring holds execution inside a window (a change freeze)', () => {
    const p = policy({ maintenanceWindows: { mode: 'NeverDuring', windows: [saturdayNight] } });
    expect(maintenanceBlock(p, Date.parse('2026-11-21T02:00:00Z'))).toEqual({
      message: expect.stringContaining('change freeze'),
      until: Date.parse('2026-11-21T05:00:00Z'),
    });
    expect(maintenanceBlock(p, T0)).toBeUndefined();
  });

  test('bad cron expressions and time zones are reported', () => {
    const p = policy({
      maintenanceWindows: {
        mode: 'OnlyDuring',
        windows: [
          { schedule: '61 * * * * *', duration: '1h' },
          { schedule: '0 2 * * 6', duration: '1h', timeZone: 'Nowhere/City' },
        ],
      },
    });
    const problems = validateSafety(p);
    expect(problems).toHaveLength(2);
    expect(problems[1]).toContain('Nowhere/City');
  });

  test('a 6-field schedule opens on the second', () => {
    const p = policy({ maintenanceWindows: { mode: 'OnlyDuring', windows: [{ schedule: '30 0 10 * * *', duration: '5s' }] } });
    expect(maintenanceBlock(p, T0)?.until).toBe(T0 + 30_000);
    expect(maintenanceBlock(p, T0 + 30_000)).toBeUndefined();
    expect(maintenanceBlock(p, T0 + 35_000)?.until).toBe(T0 + 86_400_000 + 30_000);
  });
});
