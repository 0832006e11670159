import { AUDIT_API_VERSION, AUDIT_KIND, sealRecord, serializeRecord, verifyChain, type AuditRecord } from '../../api/audit/v1.js';
import type { NamespaceHistory } from '../history.js';
import { sinkConfigFrom, sinkDescription } from '../sink-flags.js';
import { historyEntries } from './history.js';

type Body = Omit<AuditRecord, 'sequence' | 'previousDigest' | 'digest'>;

function body(name: string, completionTime: string, extra: Partial<Body> = {}): Body {
  return {
    apiVersion: AUDIT_API_VERSION,
    kind: AUDIT_KIND,
    recordedAt: completionTime,
    request: { namespace: 'shop', name, uid: `uid-${name}`, policy: 'p', requestedBy: 'alertmanager' },
    alert: { source: 'alertmanager', name: 'HighErrorRate' },
    outcome: { phase: 'Succeeded', completionTime },
    ...extra,
  };
}

/** What readHistory returns for these records as stored (verdict from the real chain check). */
function read(namespace: string, stored: AuditRecord[]): NamespaceHistory {
  const verdict = verifyChain(stored.map((r, i) => ({ text: serializeRecord(r), timestamp: i, where: `#${i}` })));
  return { namespace, records: [...stored].sort((a, b) => a.sequence - b.sequence), verdict };
}

describe('the history view of the audit record', () => {
  const first = sealRecord(
    body('restart-1', '2026-12-01T10:00:00Z', {
      plan: {
        digest: 'sha256:aaa',
        runbook: 'r',
        runbookGeneration: 1,
        policyGeneration: 1,
        risk: 'low',
        region: 'eu-west-1',
        targets: [],
      },
      approval: { decision: 'Approved', approver: 'alice', planDigest: 'sha256:aaa' },
    }),
    undefined,
  );
  const second = sealRecord(
    body('restart-2', '2026-12-01T11:00:00Z', {
      approval: { decision: 'Rejected', approver: 'bob', planDigest: 'sha256:bbb' },
      outcome: { phase: 'Rejected', completionTime: '2026-12-01T11:00:00Z' },
    }),
    first,
  );
  const third = sealRecord(body('restart-3', '2026-12-01T12:00:00Z'), second);

  test('maps each record to an entry, newest first, verified when the chain is intact', () => {
    expect(historyEntries([read('shop', [first, second, third])])).toEqual([
      {
        namespace: 'shop',
        name: 'restart-3',
        outcome: 'Succeeded',
        finishedAt: '2026-12-01T12:00:00Z',
        requestedBy: 'alertmanager',
        alert: 'alertmanager/HighErrorRate',
        verified: true,
      },
      {
        namespace: 'shop',
        name: 'restart-2',
        outcome: 'Rejected',
        finishedAt: '2026-12-01T11:00:00Z',
        requestedBy: 'alertmanager',
        approver: 'bob',
        decision: 'Rejected',
        planDigest: 'sha256:bbb',
        alert: 'alertmanager/HighErrorRate',
        verified: true,
      },
      {
        namespace: 'shop',
        name: 'restart-1',
        outcome: 'Succeeded',
        finishedAt: '2026-12-01T10:00:00Z',
        requestedBy: 'alertmanager',
        approver: 'alice',
        decision: 'Approved',
        planDigest: 'sha256:aaa',
        alert: 'alertmanager/HighErrorRate',
        verified: true,
      },
    ]);
  });

  test('a record removed from the chain leaves the one after it unverified, and the rest verified', () => {
    const entries = historyEntries([read('shop', [first, third])]);
    expect(entries.map((e) => [e.name, e.verified])).toEqual([
      ['restart-3', false],
      ['restart-1', true],
    ]);
  });

  test('a record changed after it was written is unverified, and so is the one linking to it', () => {
    const changed: AuditRecord = { ...second, approval: { decision: 'Approved', approver: 'mallory' } };
    const entries = historyEntries([read('shop', [first, changed, third])]);
    expect(entries.map((e) => [e.name, e.approver, e.verified])).toEqual([
      ['restart-3', undefined, true],
      ['restart-2', 'mallory', false],
      ['restart-1', 'alice', true],
    ]);
  });

  test('merges namespaces by finish time; the namespace is the stream the record was read from', () => {
    const other = sealRecord(body('elsewhere', '2026-12-01T10:30:00Z'), undefined);
    const entries = historyEntries([read('shop', [first, second]), read('payments', [other])]);
    expect(entries.map((e) => `${e.namespace}/${e.name}`)).toEqual(['shop/restart-2', 'payments/elsewhere', 'shop/restart-1']);
  });

  test('the sink is named by the same flags and variables as history, and described for the page', () => {
    expect(sinkConfigFrom({}, {})).toBeUndefined();
    const logs = sinkConfigFrom({}, { REMEDIATOR_AUDIT_LOG_GROUP: '/remediator/audit' })!;
    expect(sinkDescription(logs, { AWS_REGION: 'eu-west-1' })).toBe('CloudWatch Logs group "/remediator/audit" (eu-west-1)');
    const s3 = sinkConfigFrom({ bucket: 'audit', prefix: 'remediator', region: 'us-east-1' }, {})!;
    expect(sinkDescription(s3, { AWS_REGION: 'eu-west-1' })).toBe('S3 s3://audit/remediator/ (us-east-1)');
    expect(() => sinkConfigFrom({ bucket: 'b' }, { REMEDIATOR_AUDIT_LOG_GROUP: 'g' })).toThrow('not both');
  });
});
