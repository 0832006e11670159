import { pino } from 'pino';
import type { AlertPolicy } from '../api/v1alpha1/index.js';
import type { ResourceClient } from '../kube/resources.js';
import type { AdmissionVerdict } from './admission.js';
import { AlertPolicyReconciler, suspendedCondition } from './alertpolicy.js';
import { DEFAULT_RETENTION } from './retention.js';

const policy = (safety: NonNullable<AlertPolicy['spec']['safety']> = {}): AlertPolicy => ({
  metadata: { name: 'p', namespace: 'team' },
  spec: { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: 'rb' }, safety },
});

describe('suspendedCondition', () => {
  test('every policy has it, so `kubectl get ap` always shows the Suspended column', () => {
    expect(suspendedCondition(policy(), { consecutiveFailures: 0, open: false })).toMatchObject({ status: 'False', reason: 'Active' });
  });

  test('spec.safety.suspend makes it True', () => {
    expect(suspendedCondition(policy({ suspend: true }), { consecutiveFailures: 0, open: false })).toMatchObject({
      status: 'True',
      reason: 'SuspendedBySpec',
    });
  });

  test('an open circuit breaker wins: it is the one a person must resume', () => {
    const breaker = { circuitBreaker: { maxConsecutiveFailures: 2 } };
    expect(
      suspendedCondition(policy({ ...breaker, suspend: true }), { consecutiveFailures: 2, open: true, message: 'two failures' }),
    ).toMatchObject({
      status: 'True',
      reason: 'CircuitOpen',
      message: 'two failures',
    });
    expect(suspendedCondition(policy(breaker), { consecutiveFailures: 1, open: false })).toMatchObject({
      status: 'False',
      reason: 'CircuitClosed',
    });
  });
});

describe('the breaker reset token (ADR 0011)', () => {
  const epoch = (bindingUid: string): AdmissionVerdict => ({
    enforced: true,
    binding: 'b',
    epoch: { policy: { uid: 'vap', generation: 1 }, binding: { name: 'b', uid: bindingUid, generation: 1 } },
  });
  async function statusOf(policy: AlertPolicy, verdict: AdmissionVerdict, openedAt?: number) {
    const written: AlertPolicy[] = [];
    const reconciler = new AlertPolicyReconciler({
      policies: {
        replaceStatus: async (_ns: string, _n: string, body: AlertPolicy) => written.push(body),
      } as unknown as ResourceClient<AlertPolicy>,
      getPolicy: () => policy,
      getRunbook: () => undefined,
      namespaceLabels: () => ({}),
      admission: () => verdict,
      requestsOf: () => [],
      executionsOf: () => [],
      breakerOpenedAt: () => openedAt,
      deleteRequest: async () => false,
      retentionDefaults: DEFAULT_RETENTION,
      events: { record: async () => undefined },
      clock: { now: () => Date.parse('2026-12-01T12:00:00Z') },
    });
    await reconciler.reconcile({ namespace: 'team', name: 'p' }, pino({ level: 'silent' }));
    return written[0]?.status ?? policy.status;
  }
  const policy = (status?: AlertPolicy['status'], annotations: Record<string, string> = {}): AlertPolicy => ({
    metadata: { name: 'p', namespace: 'team', generation: 1, annotations },
    spec: {
      targets: { fromLabels: ['instance_id'] },
      runbookRef: { name: 'r' },
      safety: { circuitBreaker: { maxConsecutiveFailures: 1 } },
    },
    ...(status && { status }),
  });
  const opened = Date.parse('2026-12-01T11:00:00Z');

  test('is issued where approvals are enforced, kept while the epoch holds, replaced when it changes, withdrawn when not enforced', async () => {
    const first = (await statusOf(policy(), epoch('b1'), opened))?.circuitBreaker?.resetToken;
    expect(first).toMatch(/^[0-9a-f]{16}\.[0-9a-f]{32}$/);
    const kept = await statusOf(policy({ circuitBreaker: { open: true, resetToken: first } }), epoch('b1'), opened);
    expect(kept?.circuitBreaker?.resetToken).toBe(first);
    const replaced = await statusOf(policy({ circuitBreaker: { open: true, resetToken: first } }), epoch('b2'), opened);
    expect(replaced?.circuitBreaker?.resetToken).not.toBe(first);
    const none = await statusOf(policy({ circuitBreaker: { open: true, resetToken: first } }), { enforced: false, message: 'x' }, opened);
    expect(none?.circuitBreaker?.resetToken).toBeUndefined();
  });

  test('a reset closes the breaker only with the current token', async () => {
    const token = (await statusOf(policy(), epoch('b1'), opened))?.circuitBreaker?.resetToken ?? '';
    const reset = (given: string) => ({
      'remediator.dev/circuit-reset-at': '2026-12-01T11:30:00Z',
      'remediator.dev/circuit-reset-token': given,
    });
    const ok = await statusOf(policy({ circuitBreaker: { open: true, resetToken: token } }, reset(token)), epoch('b1'), opened);
    expect(ok?.circuitBreaker?.open).toBe(false);
    const guessed = await statusOf(policy({ circuitBreaker: { open: true, resetToken: token } }, reset('guess')), epoch('b1'), opened);
    expect(guessed?.circuitBreaker?.open).toBe(true);
    // Written in a gap, before the binding was re-created: the epoch moved on, so it does not count.
    const stale = await statusOf(policy({ circuitBreaker: { open: true, resetToken: token } }, reset(token)), epoch('b2'), opened);
    expect(stale?.circuitBreaker?.open).toBe(true);
  });
});

describe('status writes against a cache that has not seen the last one', () => {
  test('the next recount writes over the version the server answered, not the stale cached one', async () => {
    let cached: AlertPolicy = { ...policy(), metadata: { name: 'p', namespace: 'team', uid: 'u1', resourceVersion: '10' } };
    const sent: AlertPolicy[] = [];
    let matched = 1;
    const reconciler = new AlertPolicyReconciler({
      policies: {
        replaceStatus: async (_ns: string, _n: string, body: AlertPolicy) => {
          sent.push(structuredClone(body));
          // The API server: a write against anything but the current version is a 409.
          const current = String(10 + sent.length - 1);
          if (body.metadata?.resourceVersion !== current) throw new Error(`409 Conflict: ${body.metadata?.resourceVersion}`);
          return { ...body, metadata: { ...body.metadata, resourceVersion: String(10 + sent.length) } };
        },
      } as unknown as ResourceClient<AlertPolicy>,
      getPolicy: () => cached,
      getRunbook: () => undefined,
      namespaceLabels: () => ({}),
      admission: () => ({ enforced: false }) as AdmissionVerdict,
      requestsOf: () => Array.from({ length: matched }, (_, i) => ({ metadata: { name: `r${i}` }, spec: {} }) as never),
      executionsOf: () => [],
      breakerOpenedAt: () => undefined,
      deleteRequest: async () => false,
      retentionDefaults: DEFAULT_RETENTION,
      events: { record: async () => undefined },
      clock: { now: () => Date.parse('2026-12-01T12:00:00Z') },
    });
    const log = pino({ level: 'silent' });
    await reconciler.reconcile({ namespace: 'team', name: 'p' }, log);
    matched = 2;
    // The cache still shows version 10: without read-your-writes this write is a 409.
    await reconciler.reconcile({ namespace: 'team', name: 'p' }, log);
    expect(sent.map((b) => b.metadata?.resourceVersion)).toEqual(['10', '11']);
    expect(sent[1]?.status?.matched).toBe(2);
    // Nothing changed since: the answer is the base, so nothing is written.
    await reconciler.reconcile({ namespace: 'team', name: 'p' }, log);
    expect(sent).toHaveLength(2);
    // The cache catches up with the first write only: still behind the second.
    cached = { ...structuredClone(sent[0] as AlertPolicy), metadata: { ...cached.metadata, resourceVersion: '11' } };
    matched = 3;
    await reconciler.reconcile({ namespace: 'team', name: 'p' }, log);
    expect(sent.map((b) => b.metadata?.resourceVersion)).toEqual(['10', '11', '12']);
    // A version this controller did not write (a person's change) is newer than ours: the cache wins.
    cached = { ...cached, metadata: { ...cached.metadata, resourceVersion: '13' } };
    await reconciler.reconcile({ namespace: 'team', name: 'p' }, log);
    expect(sent.at(-1)?.metadata?.resourceVersion).toBe('13');
  });
});
