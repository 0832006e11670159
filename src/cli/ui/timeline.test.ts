import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import { timeline } from './timeline.js';

const rr: RemediationRequest = {
  metadata: {
    name: 'db-reboot',
    namespace: 'prod',
    creationTimestamp: '2026-03-01T12:00:00Z',
    managedFields: [
      { manager: 'kubectl-create', operation: 'Update', time: '2026-03-01T12:00:00Z', fieldsV1: { 'f:spec': { 'f:alert': {} } } },
      { manager: 'kubectl-remediator', operation: 'Update', time: '2026-03-01T12:05:00Z', fieldsV1: { 'f:spec': { 'f:approval': {} } } },
    ],
  },
  spec: {
    policyRef: { name: 'restart-db' },
    requestedBy: 'bob',
    alert: { source: 'alertmanager', name: 'DbDown' },
    approval: { decision: 'Approved', approver: 'alice', reason: 'ok', planDigest: `sha256:${'a'.repeat(64)}` },
  },
  status: {
    phase: 'Failed',
    message: 'i-1 failed',
    startTime: '2026-03-01T12:00:01Z',
    completionTime: '2026-03-01T12:07:00Z',
    conditions: [
      { type: 'Executed', status: 'False', reason: 'CommandFailed', message: 'exit 1', lastTransitionTime: '2026-03-01T12:07:00Z' },
    ],
    execution: {
      ssm: {
        documentName: 'AWS-RunShellScript',
        comment: 'remediator:uid',
        intentRecordedAt: '2026-03-01T12:05:01Z',
        commandId: 'c-1',
        requestedAt: '2026-03-01T12:05:02Z',
      },
    },
    notifications: [{ phase: 'Failed', error: 'AccessDenied', sentAt: '2026-03-01T12:07:01Z' }],
  },
};

describe('timeline', () => {
  test("tells a request's story in time order, the approval dated by the write that added it", () => {
    const t = timeline(rr, [{ type: 'Warning', reason: 'CommandFailed', message: 'i-1: exit 1', time: new Date('2026-03-01T12:06:59Z') }]);
    expect(t.map((e) => [e.time.slice(11, 19), e.what, e.warning ?? false])).toEqual([
      ['12:00:00', 'Requested by bob', false],
      ['12:00:01', 'Planned', false],
      ['12:05:00', 'Approved by alice', false],
      ['12:05:01', 'Intent recorded: AWS-RunShellScript', false],
      ['12:05:02', 'SSM accepted command c-1', false],
      ['12:06:59', 'Event CommandFailed', true],
      ['12:07:00', 'Executed is False (CommandFailed)', true],
      ['12:07:00', 'Ended: Failed', true],
      ['12:07:01', 'Notified: Failed', true],
    ]);
  });

  test('what it cannot date, it leaves out rather than guess', () => {
    const t = timeline({ ...rr, metadata: { ...rr.metadata, managedFields: [] }, status: {} }, undefined);
    expect(t.map((e) => e.what)).toEqual(['Requested by bob']);
  });
});
