import type { AlertPolicy, RemediationRequest } from '../api/v1alpha1/index.js';
import { approvalCommands, notifyMessage } from './notify-message.js';

const digest = `sha256:${'b'.repeat(64)}`;
const rr = {
  metadata: { namespace: 'team-a', name: 'nginx-down-1', uid: 'u1' },
  spec: {
    policyRef: { name: 'restart' },
    alert: { source: 'alertmanager', name: 'NginxDown', labels: { instance_id: 'i-0123456789abcdef0' } },
  },
} as RemediationRequest;
const status = {
  phase: 'AwaitingApproval',
  risk: 'Medium',
  startTime: '2026-12-06T10:00:00Z',
  targets: ['i-0123456789abcdef0'],
  plan: {
    digest,
    runbook: { name: 'restart-nginx', generation: 1 },
    policyGeneration: 1,
    risk: 'Medium',
    targets: ['i-0123456789abcdef0'],
    region: 'eu-west-1',
    ssm: {
      documentName: 'AWS-RunShellScript',
      parameters: { commands: ["systemctl restart nginx && echo 'ok'"] },
      timeoutSeconds: 60,
      maxConcurrency: '1',
      maxErrors: '0',
    },
  },
} as NonNullable<RemediationRequest['status']>;
const policy = {
  metadata: { name: 'restart' },
  spec: { approval: { mode: 'Manual', approvers: ['alice'], timeout: '30m' } },
} as unknown as AlertPolicy;

describe('notify messages', () => {
  test('AwaitingApproval: a Chatbot custom notification with the plan and the commands that decide it', () => {
    const m = JSON.parse(
      notifyMessage(rr, status, policy, 'AwaitingApproval', { request: 'nginx-down-1', planDigest: digest, alert: { name: 'NginxDown' } }),
    );
    expect(m).toMatchObject({
      version: '1.0',
      source: 'custom',
      content: { textType: 'client-markdown', title: 'Approval needed: team-a/nginx-down-1' },
    });
    expect(m.content.description).toContain(digest);
    expect(m.content.description).toContain('systemctl restart nginx');
    expect(m.content.nextSteps).toEqual(
      expect.arrayContaining([
        expect.stringContaining('`kubectl remediator approve nginx-down-1 -n team-a`'),
        expect.stringContaining('Who may approve: alice'),
        'Expires unless decided by 2026-12-06T10:30:00.000Z',
      ]),
    );
    // Every additionalContext value is a string (Chatbot's schema); objects travel as JSON.
    expect(Object.values(m.metadata.additionalContext).every((v) => typeof v === 'string')).toBe(true);
    expect(JSON.parse(m.metadata.additionalContext.alert)).toEqual({ name: 'NginxDown' });
    expect(m.metadata.additionalContext.approveCommand).toBe('kubectl remediator approve nginx-down-1 -n team-a');
    // The fields the message always had stay at its top level.
    expect(m).toMatchObject({ request: 'nginx-down-1', planDigest: digest });
    expect(m.metadata).toMatchObject({ threadId: 'remediator/team-a/nginx-down-1', relatedResources: ['i-0123456789abcdef0'] });
  });

  test('the plain kubectl command names the digest and pastes into a shell as one argument', () => {
    const { kubectl } = approvalCommands(rr, status);
    const m = /-p '(.*)'$/.exec(kubectl!);
    expect(JSON.parse(m![1]!)).toEqual({ spec: { approval: { decision: 'Approved', approver: 'YOUR-USER-NAME', planDigest: digest } } });
  });

  test('other phases point to the request, without approval commands', () => {
    const m = JSON.parse(notifyMessage(rr, { ...status, phase: 'Succeeded' }, policy, 'Succeeded', { phase: 'Succeeded' }));
    expect(m.content.title).toBe('team-a/nginx-down-1: Succeeded');
    expect(m.content.nextSteps).toEqual(['Details: `kubectl remediator describe nginx-down-1 -n team-a`']);
    expect(m.metadata.additionalContext.approveCommand).toBeUndefined();
  });
});
