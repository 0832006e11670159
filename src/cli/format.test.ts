import type { RemediationRequest } from '../api/v1alpha1/index.js';
import { age, describeRequest, listTable, table } from './format.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

function rr(name: string, extra: Partial<RemediationRequest> = {}): RemediationRequest {
  return {
    metadata: { name, namespace: 'prod', creationTimestamp: '2026-03-01T11:57:00Z' },
    spec: {
      policyRef: { name: 'restart-nginx' },
      requestedBy: 'alice',
      alert: { source: 'alertmanager', name: 'NginxDown', labels: { instance_id: 'i-0123456789abcdef0' } },
    },
    ...extra,
  };
}

describe('kubectl remediator output', () => {
  test("age reads like kubectl's", () => {
    expect(age('2026-03-01T11:59:15Z', NOW)).toBe('45s');
    expect(age('2026-03-01T11:58:00Z', NOW)).toBe('2m');
    expect(age('2026-03-01T09:00:00Z', NOW)).toBe('3h');
    expect(age('2026-02-20T12:00:00Z', NOW)).toBe('9d');
    expect(age(undefined, NOW)).toBe('<unknown>');
    expect(age('not a date', NOW)).toBe('<unknown>');
  });

  test('tables align columns with three spaces, like kubectl', () => {
    expect(
      table(
        ['A', 'LONGER'],
        [
          ['xxxxx', 'y'],
          ['z', ''],
        ],
      ),
    ).toBe('A       LONGER\nxxxxx   y\nz');
  });

  test('list shows phase, risk, requester, decision and targets', () => {
    const items = [
      rr('a', { status: { phase: 'AwaitingApproval', risk: 'High', targetCount: 2 } }),
      rr('b', {
        spec: { ...rr('b').spec, approval: { decision: 'Approved', approver: 'bob' } },
        status: { phase: 'Succeeded', risk: 'Low', targets: ['i-0123456789abcdef0'] },
      }),
      rr('c'),
    ];
    expect(listTable(items, { now: NOW, allNamespaces: true, wide: false }).split('\n')).toEqual([
      'NAMESPACE   NAME   POLICY          PHASE              RISK   REQUESTED BY   DECISION       TARGETS   AGE',
      'prod        a      restart-nginx   AwaitingApproval   High   alice          -              2         3m',
      'prod        b      restart-nginx   Succeeded          Low    alice          Approved:bob   1         3m',
      'prod        c      restart-nginx   Pending            -      alice          -              -         3m',
    ]);
    expect(listTable([rr('a', { status: { message: 'waiting\nfor you' } })], { now: NOW, allNamespaces: false, wide: true })).toContain(
      'alertmanager/NginxDown   waiting for you',
    );
  });

  test('describe shows what a reviewer needs before deciding', () => {
    const page = describeRequest(
      rr('a', {
        status: {
          phase: 'AwaitingApproval',
          reason: 'ApprovalRequired',
          risk: 'High',
          targets: ['i-0123456789abcdef0'],
          enrichment: {
            observedAt: '2026-03-01T11:58:00Z',
            instances: [{ instanceId: 'i-0123456789abcdef0', state: 'running', instanceType: 't3.micro', tags: { Name: 'web-1' } }],
          },
          conditions: [
            {
              type: 'Approved',
              status: 'Unknown',
              reason: 'AwaitingApproval',
              message: 'waiting for spec.approval',
              lastTransitionTime: '2026-03-01T11:58:00Z',
            },
          ],
        },
      }),
      [{ type: 'Normal', reason: 'ApprovalRequired', message: 'High risk', time: '2026-03-01T11:58:30Z' }],
      NOW,
    );
    expect(page).toContain('Phase:         AwaitingApproval (ApprovalRequired)');
    expect(page).toContain('Risk:          High');
    expect(page).toContain('Requested by:  alice');
    expect(page).toContain('Decision:      <none>');
    expect(page).toContain('Targets:       i-0123456789abcdef0 (1)');
    expect(page).toMatch(/i-0123456789abcdef0 +running +t3\.micro +Name=web-1/);
    expect(page).toMatch(/Approved +Unknown +AwaitingApproval +2m +waiting for spec\.approval/);
    expect(page).toMatch(/Normal +ApprovalRequired +90s +High risk/);
    expect(describeRequest(rr('b'), undefined, NOW)).toContain('<cannot list events in this namespace>');
    expect(describeRequest(rr('b'), [], NOW)).toContain('Risk:          <not assessed yet>');
  });
  test('describe shows the rollout: the approved waves, where it is, the error budget, why it stopped', () => {
    const page = describeRequest(
      rr('r', {
        status: {
          phase: 'Failed',
          reason: 'Ineffective',
          plan: {
            digest: `sha256:${'0'.repeat(64)}`,
            runbook: { name: 'restart', generation: 1 },
            policyGeneration: 1,
            risk: 'Low',
            targets: ['i-0123456789abcdef0'],
            region: 'eu-west-1',
            ssm: {
              documentName: 'AWS-RunShellScript',
              parameters: {},
              timeoutSeconds: 600,
              maxConcurrency: '10',
              maxErrors: '2',
              rollout: { waves: [1, 30, 30], pauseSeconds: 60, alarms: ['fleet-5xx'] },
            },
          },
          execution: {
            ssm: {
              documentName: 'AWS-RunShellScript',
              comment: 'remediator:u',
              intentRecordedAt: '2026-03-01T11:58:00Z',
              commands: [
                {
                  comment: 'remediator:u/0',
                  instanceIds: ['i-0123456789abcdef0'],
                  wave: 0,
                  commandId: 'c-0',
                  maxConcurrency: '1',
                  maxErrors: '2',
                  cancelledAt: '2026-03-01T11:59:01Z',
                },
                { comment: 'remediator:u/1', instanceIds: ['i-0123456789abcdef1'], wave: 1 },
              ],
              rollout: {
                currentWave: 0,
                errors: { allowed: 2, seen: 0 },
                waves: [
                  { size: 1, state: 'Ineffective', succeeded: 1, failed: 0, message: 'errors averaged 4' },
                  { size: 30, state: 'NotSent' },
                  { size: 30, state: 'NotSent' },
                ],
                stopped: { reason: 'Ineffective', at: '2026-03-01T11:59:00Z', message: 'wave 1 ineffective' },
              },
            },
          },
        },
      }),
      [],
      NOW,
    );
    expect(page).toContain('Waves:        1, 30, 30 instance(s), 60s apart');
    expect(page).toContain('Abort on:     fleet-5xx in ALARM');
    expect(page).toContain('Rollout:      wave 1 of 3; errors 0 of 2 allowed');
    expect(page).toContain('Stopped:      Ineffective at 2026-03-01T11:59:00Z: wave 1 ineffective');
    expect(page).toMatch(/1 +1 +Ineffective +1 +0 +errors averaged 4/);
    expect(page).toMatch(/3 +30 +NotSent/);
    // Each command: its wave, id, the limits it went out with, and a cancel.
    expect(page).toMatch(/1 +c-0 +1 +1 +2 +cancelled 2026-03-01T11:59:01Z/);
    expect(page).toMatch(/2 +<not sent> +1/);
  });
});
