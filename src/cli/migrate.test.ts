/**
 * `kubectl remediator migrate`'s conversion, on policies as the b9539a7 schema stored
 * them (its samples): the Runbook grants no more than the inline action did (one
 * namespace, the policy's risk as floor, auto-approval only as before, its target cap,
 * its notify topic only, only fields the old schema had), and the policy names it.
 * test/e2e/upgrade.test.ts runs the command against the real API server.
 */
import { parseAllDocuments } from 'yaml';
import type { AlertPolicy } from '../api/v1alpha1/index.js';
import { parseCommand } from './args.js';
import { migratePolicy, migrationYaml, needsMigration } from './migrate.js';

const old = (spec: Record<string, unknown>, annotations?: Record<string, string>): AlertPolicy =>
  ({
    apiVersion: 'remediator.dev/v1alpha1',
    kind: 'AlertPolicy',
    metadata: { name: 'page-disk-full', namespace: 'payments', uid: 'u', resourceVersion: '7', ...(annotations && { annotations }) },
    spec: { targets: { fromLabels: ['instance_id'] }, ...spec },
  }) as unknown as AlertPolicy;

const SSM = {
  documentName: 'AWS-RunShellScript',
  parameters: [{ name: 'commands', values: ['systemctl restart {{ labels.service }}'], allowedPattern: '^[a-z-]+$', sneaky: 'x' }],
  timeoutSeconds: 120,
  maxConcurrency: '50',
  maxErrors: '0',
};

describe('migratePolicy', () => {
  test('an SSM action becomes a Runbook for this namespace only, at the policy risk, auto-approved as before', () => {
    const { runbook, policy, notes } = migratePolicy(old({ risk: 'Low', action: { ssm: SSM }, safety: { cooldown: '15m' } }), 'alice');
    expect(runbook.metadata?.name).toBe('payments-page-disk-full');
    expect(runbook.metadata?.annotations).toEqual({ 'remediator.dev/migrated-from': 'payments/page-disk-full' });
    expect(runbook.spec).toEqual({
      minRisk: 'Low',
      maxAutoApprovedRisk: 'Low',
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'payments' } },
      scope: { maxTargets: 10 },
      action: {
        ssm: {
          documentName: 'AWS-RunShellScript',
          timeoutSeconds: 120,
          maxConcurrency: '50',
          maxErrors: '0',
          // Only the fields the old schema had: `sneaky` is not carried over.
          parameters: [{ name: 'commands', values: ['systemctl restart {{ labels.service }}'], allowedPattern: '^[a-z-]+$' }],
        },
      },
    });
    expect(policy.spec).toEqual({
      targets: { fromLabels: ['instance_id'] },
      risk: 'Low',
      safety: { cooldown: '15m' },
      runbookRef: { name: 'payments-page-disk-full' },
    });
    expect(policy.metadata).toEqual({
      name: 'page-disk-full',
      namespace: 'payments',
      annotations: { 'remediator.dev/changed-by': 'alice' },
    });
    expect(notes.join(' ')).toContain('serves namespace payments only');
  });

  test('a manual or higher-risk policy gets a Runbook that never auto-approves; its cap and notify topic carry over', () => {
    const topic = 'arn:aws:sns:eu-west-1:123456789012:oncall';
    const { runbook, policy } = migratePolicy(
      old({
        risk: 'High',
        targets: { fromLabels: ['instance_id'], maxTargets: 3 },
        action: {
          sns: { topicArn: topic, message: 'disk full on {{ labels.instance }}', extra: 1 },
          notify: { topicArn: topic, on: ['Failed'] },
        },
      }),
      'bob',
    );
    expect(runbook.spec).toMatchObject({ minRisk: 'High', maxAutoApprovedRisk: 'None', scope: { maxTargets: 3 }, notifyTopics: [topic] });
    expect(runbook.spec.action).toEqual({ sns: { topicArn: topic, message: 'disk full on {{ labels.instance }}' } });
    expect(policy.spec.notify).toEqual({ topicArn: topic, on: ['Failed'] });
    // An explicit Auto on a Medium policy stays auto-approved up to Medium, not above.
    expect(
      migratePolicy(old({ risk: 'Medium', approval: { mode: 'Auto' }, action: { ssm: SSM } }), 'a').runbook.spec.maxAutoApprovedRisk,
    ).toBe('Medium');
    // The old schema's default risk was Low.
    expect(migratePolicy(old({ action: { ssm: SSM } }), 'a').runbook.spec.minRisk).toBe('Low');
  });

  test("an action the CRD already pruned is read from kubectl's last-applied annotation, which the policy drops", () => {
    const lastApplied = JSON.stringify({ spec: { action: { ssm: SSM } } });
    const stored = old({}, { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied, team: 'x' });
    expect(needsMigration(stored)).toBe(true);
    const { notes, policy } = migratePolicy(stored, 'alice');
    expect(notes.join(' ')).toContain('last-applied annotation');
    expect(policy.metadata?.annotations).toEqual({ team: 'x', 'remediator.dev/changed-by': 'alice' });
    expect(needsMigration(old({ runbookRef: { name: 'x' } }, { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied }))).toBe(
      false,
    );
    expect(() => migratePolicy(old({ runbookRef: { name: 'x' } }), 'a')).toThrow('nothing to migrate');
  });

  test('the YAML stream parses back into the Runbook and the policy, with the notes as comments', () => {
    const m = migratePolicy(old({ action: { ssm: SSM } }), 'alice');
    const text = migrationYaml([m]);
    expect(text).toMatch(/^# Runbook payments-page-disk-full/);
    const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind: string });
    expect(docs.map((d) => d.kind)).toEqual(['Runbook', 'AlertPolicy']);
    expect(docs[0]).toEqual(JSON.parse(JSON.stringify(m.runbook)));
  });
});

describe('kubectl remediator migrate arguments', () => {
  test('one policy or all, --dir to review, --apply to create', () => {
    expect(parseCommand(['migrate', 'ap/p1', '-n', 'x'])).toMatchObject({
      kind: 'migrate',
      name: 'p1',
      apply: false,
      conn: { namespace: 'x' },
    });
    expect(parseCommand(['migrate', '-A', '--dir', 'out'])).toMatchObject({ kind: 'migrate', allNamespaces: true, dir: 'out' });
    expect(parseCommand(['migrate', '--apply'])).toMatchObject({ kind: 'migrate', apply: true });
    expect(() => parseCommand(['migrate', '--apply', '--dir', 'x'])).toThrow('either --dir');
    expect(() => parseCommand(['migrate', 'p', '-A'])).toThrow('either a policy name');
    expect(() => parseCommand(['migrate', '--reason', 'x'])).toThrow('--reason does not apply to migrate');
  });
});
