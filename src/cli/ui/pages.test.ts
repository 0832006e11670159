import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import { inboxPage, requestPage } from './pages.js';

const layout = { base: '/tok', user: 'alice', scope: 'namespace prod', now: Date.parse('2026-03-01T12:10:00Z') };
const digest = `sha256:${'b'.repeat(64)}`;
const rr = (phase: string, extra: Partial<RemediationRequest['spec']> = {}): RemediationRequest => ({
  metadata: { name: 'db-reboot', namespace: 'prod', uid: 'u1', creationTimestamp: '2026-03-01T12:00:00Z' },
  spec: {
    policyRef: { name: 'restart-db' },
    requestedBy: 'bob',
    alert: { source: 'alertmanager', name: 'DbDown', labels: { '<b>k</b>': '"><script>alert(1)</script>' } },
    ...extra,
  },
  status: {
    phase: phase as 'AwaitingApproval',
    risk: 'High',
    plan: {
      digest,
      runbook: { name: 'rb', generation: 2 },
      policyGeneration: 3,
      risk: 'High',
      targets: ['i-0123456789abcdef0'],
      region: 'eu-west-1',
      ssm: {
        documentName: 'AWS-RunShellScript',
        parameters: { commands: ['echo </pre><script>x</script>'] },
        timeoutSeconds: 60,
        maxConcurrency: '1',
        maxErrors: '0',
      },
    },
  },
});

describe('ui pages', () => {
  test('a request page escapes labels and command text, and its form carries the digest shown', () => {
    const out = requestPage(layout, { rr: rr('AwaitingApproval'), timeline: [], eventsReadable: true });
    expect(out).not.toContain('<script>');
    expect(out).not.toContain('<b>k</b>');
    expect(out).toContain('&lt;b&gt;k&lt;/b&gt;');
    expect(out).toContain('echo &lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;');
    expect(out).toContain(`<input type="hidden" name="planDigest" value="${digest}">`);
    expect(out).toContain('<form class="decide" method="post" action="/tok/rr/prod/db-reboot/decide">');
    expect(out).toContain('id="approve"');
  });

  test('no Approve before AwaitingApproval, no decision at all once decided or ended', () => {
    expect(requestPage(layout, { rr: rr('Enriching'), timeline: [], eventsReadable: true })).not.toContain('id="approve"');
    expect(requestPage(layout, { rr: rr('Enriching'), timeline: [], eventsReadable: true })).toContain('id="reject"');
    const decided = rr('AwaitingApproval', { approval: { decision: 'Rejected', approver: 'carol' } });
    expect(requestPage(layout, { rr: decided, timeline: [], eventsReadable: true })).not.toContain('<form');
    expect(requestPage(layout, { rr: rr('Succeeded'), timeline: [], eventsReadable: true })).not.toContain('<form');
  });

  test('the inbox separates what waits for this user from what waits for someone else, and says why', () => {
    const out = inboxPage(layout, [
      { rr: rr('AwaitingApproval') },
      { rr: rr('AwaitingApproval'), blocked: 'High risk needs four eyes & you requested it' },
    ]);
    expect(out).toContain('Waiting for you <span class="note">(1)</span>');
    expect(out).toContain('<h2>Waiting for someone else</h2>');
    expect(out).toContain('High risk needs four eyes &amp; you requested it');
  });
});
