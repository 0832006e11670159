import { pino } from 'pino';
import type { AlertPolicy, Phase, RemediationRequest } from './api/v1alpha1/index.js';
import { AlertPolicyReconciler } from './controllers/alertpolicy.js';
import { nextAnnouncement } from './controllers/request/notify.js';
import { beyondHistoryLimit, DEFAULT_RETENTION, ttlLeftMs } from './controllers/retention.js';
import type { ResourceClient } from './kube/resources.js';
import { leanRequest } from './caches.js';

const T = (s: number) => new Date(Date.UTC(2026, 10, 30, 8, 0, s)).toISOString();
const long = (c: string) => c.repeat(4000);

/** A finished request as the controller leaves it: every part of the status filled, long tails included. */
function finished(i: number, phase: Phase = 'Succeeded', extra: Partial<RemediationRequest['metadata']> = {}): RemediationRequest {
  const uid = `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`;
  return {
    apiVersion: 'remediator.dev/v1alpha1',
    kind: 'RemediationRequest',
    metadata: {
      name: `rr-${i}`,
      namespace: 'team',
      uid,
      resourceVersion: String(100 + i),
      generation: 1,
      creationTimestamp: T(i),
      labels: { 'remediator.dev/policy': 'p' },
      annotations: { note: long('a') },
      managedFields: [{ manager: 'remediator', fieldsV1: { 'f:status': {} } }],
      ...extra,
    },
    spec: {
      policyRef: { name: 'p' },
      alert: {
        source: 'alertmanager',
        name: 'HighCPU',
        labels: { instance_id: 'i-0123456789abcdef0' },
        annotations: { runbook: long('r') },
      },
      requestedBy: 'system:serviceaccount:remediator:intake',
    },
    status: {
      phase,
      reason: 'CommandSucceeded',
      message: long('m'),
      observedGeneration: 1,
      conditions: [
        { type: 'Enriched', status: 'True', lastTransitionTime: T(i), reason: 'Read', message: 'x' },
        { type: 'Ready', status: phase === 'Succeeded' ? 'True' : 'False', lastTransitionTime: T(i + 30), reason: phase, message: 'done' },
      ],
      targets: ['i-0123456789abcdef0'],
      targetCount: 1,
      notifications: [{ phase: 'Executing', messageId: 'm-1', sentAt: T(i + 10) }],
      execution: {
        ssm: {
          documentName: 'AWS-RunShellScript',
          comment: `remediator:${uid}`,
          intentRecordedAt: T(i + 5),
          ...(i % 2 === 0 && { commandId: `cmd-${i}` }),
          invocations: [
            { instanceId: 'i-0123456789abcdef0', status: 'Success', responseCode: 0, stdoutTail: long('o'), stderrTail: long('e') },
          ],
        },
      },
      enrichment: {
        observedAt: T(i),
        instances: [{ instanceId: 'i-0123456789abcdef0', state: 'running', tags: { Service: 'nginx' } }],
        metrics: [{ name: 'cpu', statistic: 'Average', values: Array(60).fill(95), timestamps: Array(60).fill(T(i)) }],
      },
      startTime: T(i + 1),
      completionTime: T(100 - i),
    },
  };
}

const policy: AlertPolicy = {
  metadata: { name: 'p', namespace: 'team', generation: 1 },
  spec: {
    targets: { fromLabels: ['instance_id'] },
    runbookRef: { name: 'rb' },
    notify: { topicArn: 'arn:aws:sns:us-east-1:111111111111:t', on: ['Executing', 'Succeeded', 'Failed'] },
    retention: { historyLimit: 3 },
  },
};

/** The status the policy reconciler writes (counters, last trigger) and the requests it deletes, from these cached requests. */
async function policyView(requests: RemediationRequest[]) {
  const written: AlertPolicy[] = [];
  const deleted: string[] = [];
  const reconciler = new AlertPolicyReconciler({
    policies: {
      replaceStatus: async (_ns: string, _n: string, body: AlertPolicy) => written.push(body),
    } as unknown as ResourceClient<AlertPolicy>,
    getPolicy: () => policy,
    getRunbook: () => undefined,
    namespaceLabels: () => ({}),
    admission: () => ({
      enforced: true,
      binding: 'x',
      epoch: { policy: { uid: 'p', generation: 1 }, binding: { name: 'b', uid: 'b', generation: 1 } },
    }),
    requestsOf: () => requests,
    executionsOf: () => [],
    breakerOpenedAt: () => undefined,
    deleteRequest: async (_ns, name) => deleted.push(name) > 0,
    retentionDefaults: DEFAULT_RETENTION,
    events: { record: async () => undefined },
    clock: { now: () => Date.parse(T(200)) },
  });
  await reconciler.reconcile({ namespace: 'team', name: 'p' }, pino({ level: 'silent' }));
  return { status: written[0]?.status, deleted };
}

describe('leanRequest (the request cache transform)', () => {
  test('a finished request is cached in a fraction of its size', () => {
    const full = finished(1);
    const lean = leanRequest(structuredClone(full));
    expect(JSON.stringify(lean).length).toBeLessThan(JSON.stringify(full).length / 10);
    expect(lean.metadata?.managedFields).toBeUndefined();
    expect(lean.status?.execution?.ssm?.invocations).toBeUndefined();
  });

  test('every reader of a cached finished request gets the same answer from the compact form', async () => {
    const phases: Phase[] = ['Succeeded', 'Failed', 'Skipped', 'Cancelled', 'Rejected', 'Expired'];
    const full = phases.flatMap((phase, k) => [finished(2 * k, phase), finished(2 * k + 1, phase)]);
    const lean = full.map((r) => leanRequest(structuredClone(r)));
    // The policy's counters, last trigger time and history limit (alertpolicy.ts, retention.ts).
    expect(await policyView(lean)).toEqual(await policyView(full));
    expect(beyondHistoryLimit(lean, 3).map((r) => r.metadata?.name)).toEqual(beyondHistoryLimit(full, 3).map((r) => r.metadata?.name));
    for (const [k, r] of full.entries()) {
      const l = lean[k]!;
      // The request reconciler: its end-phase path (notify.ts, retention.ts) and what it logs and deletes by.
      expect(nextAnnouncement(policy, l)).toBe(nextAnnouncement(policy, r));
      expect(ttlLeftMs(l, DEFAULT_RETENTION, Date.parse(T(500)))).toBe(ttlLeftMs(r, DEFAULT_RETENTION, Date.parse(T(500))));
      for (const read of [
        (x: RemediationRequest) => [x.metadata?.name, x.metadata?.namespace, x.metadata?.uid, x.metadata?.resourceVersion],
        (x: RemediationRequest) => [x.metadata?.deletionTimestamp, x.metadata?.finalizers?.length ?? 0, x.metadata?.creationTimestamp],
        (x: RemediationRequest) => [x.spec.policyRef.name, x.status?.phase, x.status?.completionTime],
        // The request gauges (caches.ts `observeCaches`).
        (x: RemediationRequest) => x.status?.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime,
      ])
        expect(read(l)).toEqual(read(r));
    }
  });

  test('a request in progress, or one still holding the execution finalizer, is cached whole', () => {
    const running = finished(1, 'Executing');
    expect(leanRequest(structuredClone(running))).toEqual({ ...running, metadata: { ...running.metadata, managedFields: undefined } });
    const held = finished(2, 'Succeeded', { finalizers: ['remediator.dev/execution'] });
    expect(leanRequest(structuredClone(held)).status?.execution?.ssm?.invocations).toHaveLength(1);
  });
});
