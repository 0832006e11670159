/**
 * The kstatus conditions each kind derives (the rules themselves run in test/e2e/gitops.test.ts,
 * through a real Flux): which phase is Ready, Reconciling or Stalled, and that nothing
 * but those three is touched.
 */
import { PHASES, type AlertPolicyStatus, type Phase, type RemediationRequestStatus } from '../api/v1alpha1/index.js';
import type { Condition } from '../runtime/conditions.js';
import { requestReadiness, withReadinessKstatus, withRequestKstatus } from './kstatus.js';

const NOW = '2026-12-01T00:00:00Z';
const rrStatus = (s: RemediationRequestStatus): RemediationRequestStatus => s;
const apStatus = (s: AlertPolicyStatus): AlertPolicyStatus => s;
const types = (conditions: Condition[] | undefined) =>
  Object.fromEntries((conditions ?? []).map((c) => [c.type, `${c.status}${c.reason ? ` ${c.reason}` : ''}`]));

describe('RemediationRequest', () => {
  const expected: Record<Phase, Record<string, string>> = {
    Pending: { Ready: 'Unknown Because', Reconciling: 'True Because' },
    Enriching: { Ready: 'Unknown Because', Reconciling: 'True Because' },
    AwaitingApproval: { Ready: 'Unknown Because', Reconciling: 'True Because' },
    Approved: { Ready: 'Unknown Because', Reconciling: 'True Because' },
    Executing: { Ready: 'Unknown Because', Reconciling: 'True Because' },
    Succeeded: { Ready: 'True Because' },
    Skipped: { Ready: 'True Because' },
    Cancelled: { Ready: 'True Because' },
    Rejected: { Ready: 'True Because' },
    Failed: { Ready: 'False Because', Stalled: 'True Because' },
    Expired: { Ready: 'False Because', Stalled: 'True Because' },
  };

  test.each(PHASES.map((p) => [p]))('%s', (phase) => {
    const status = withRequestKstatus(rrStatus({ phase, reason: 'Because', message: 'details', observedGeneration: 3 }), NOW);
    expect(types(status.conditions)).toEqual(expected[phase]);
    expect(status.conditions?.every((c) => c.observedGeneration === 3)).toBe(true);
    expect(requestReadiness(phase)).toBe(expected[phase].Ready?.split(' ')[0]);
  });

  test('a request that moves on drops the conditions of its former state, and keeps the others', () => {
    let status = withRequestKstatus(rrStatus({ phase: 'Executing', reason: 'IntentRecorded', message: 'sending' }), NOW);
    status.conditions?.push({ type: 'Executed', status: 'True', reason: 'CommandSucceeded', message: '', lastTransitionTime: NOW });
    status = withRequestKstatus({ ...status, phase: 'Succeeded', reason: 'CommandSucceeded' }, '2026-12-01T00:01:00Z');
    expect(types(status.conditions)).toEqual({ Ready: 'True CommandSucceeded', Executed: 'True CommandSucceeded' });
  });

  test('AWS denying a call while in progress is Stalled (a person must fix the role), not Reconciling', () => {
    const denied: Condition = {
      type: 'CloudAccess',
      status: 'False',
      reason: 'AccessDenied',
      message: 'grant ssm:SendCommand',
      lastTransitionTime: NOW,
    };
    const status = withRequestKstatus({ phase: 'Executing' as Phase, reason: 'IntentRecorded', conditions: [denied] }, NOW);
    expect(types(status.conditions)).toMatchObject({ Stalled: 'True AccessDenied', Ready: 'Unknown IntentRecorded' });
    expect(types(status.conditions).Reconciling).toBeUndefined();
  });

  test('the same status derived twice is the same JSON (no write of its own)', () => {
    const once = withRequestKstatus({ phase: 'Failed' as Phase, reason: 'CommandFailed', message: 'exit 1' }, NOW);
    const twice = withRequestKstatus(structuredClone(once), '2026-12-02T00:00:00Z');
    expect(twice).toEqual(once);
  });
});

describe('AlertPolicy and Runbook', () => {
  const ready = (status: Condition['status'], reason: string): Condition => ({
    type: 'Ready',
    status,
    reason,
    message: 'fix it',
    lastTransitionTime: NOW,
  });

  test('Ready=False is Stalled with its reason; Ready=True drops Stalled; observedGeneration follows', () => {
    const bad = withReadinessKstatus(apStatus({ conditions: [ready('False', 'InvalidSpec')] }), 4, NOW);
    expect(bad.observedGeneration).toBe(4);
    expect(types(bad.conditions)).toEqual({ Ready: 'False InvalidSpec', Stalled: 'True InvalidSpec' });
    const fixed = withReadinessKstatus({ ...bad, conditions: [ready('True', 'Valid'), ...(bad.conditions ?? []).slice(1)] }, 5, NOW);
    expect(types(fixed.conditions)).toEqual({ Ready: 'True Valid' });
    expect(fixed.observedGeneration).toBe(5);
  });
});
