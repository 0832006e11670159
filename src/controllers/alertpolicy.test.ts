import type { AlertPolicy } from '../api/v1alpha1/index.js';
import { suspendedCondition } from './alertpolicy.js';

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
