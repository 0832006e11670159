/**
 * The stored-shape check on objects as older releases stored them: the AlertPolicy
 * sample of commit b9539a7 (the last before Runbooks, copied from its
 * config/samples/remediator_v1alpha1_alertpolicy_restart-nginx.yaml, as the API server
 * serves it with that schema's defaults), requests an older controller left behind, and
 * the runbook reconciler's hook writing Ready=False once, and the request reconciler's
 * hook on the shared fakes: such a request ends Failed, and nothing reaches SSM.
 */
import { pino } from 'pino';
import type { AlertPolicy, RemediationRequest, Runbook } from '../api/v1alpha1/index.js';
import type { KubeObject } from '../runtime/informer.js';
import { FakeSns, FakeSsm } from '../fakes/aws.js';
import { FakeApiServer } from '../fakes/cluster.js';
import { catalog, FAKE_NS, FakeController } from '../fakes/controller.js';
import { MemoryLedgerStorage } from '../fakes/ledger-memory.js';
import { Transitions } from './request/transition.js';
import { RunbookReconciler } from './runbook-reconciler.js';
import { alertPolicyShape, requestShape, runbookShape, storedShapeTransition, usablePolicy } from './stored-shape.js';

const log = pino({ level: 'silent' });
const clock = { now: () => Date.parse('2026-12-07T00:00:00Z') };

/** As stored by the b9539a7 chart's CRD (its defaults filled in). */
const OLD_POLICY = {
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'AlertPolicy',
  metadata: { name: 'restart-nginx', namespace: 'web', generation: 1, uid: 'u1' },
  spec: {
    match: {
      sources: ['alertmanager', 'generic'],
      labels: [
        { name: 'alertname', op: '=', value: 'NginxDown' },
        { name: 'service', op: '=~', value: 'nginx|nginx-[a-z]+' },
      ],
    },
    targets: { fromLabels: ['instance_id'], maxTargets: 5 },
    enrichment: { tagKeys: ['Name', 'Environment', 'Service'] },
    risk: 'Low',
    action: {
      ssm: {
        documentName: 'AWS-RunShellScript',
        parameters: [{ name: 'commands', values: ['systemctl restart {{ labels.service }}', 'systemctl is-active {{ labels.service }}'] }],
        timeoutSeconds: 120,
        maxConcurrency: '50',
        maxErrors: '0',
      },
    },
    safety: { cooldown: '15m' },
  },
} as unknown as AlertPolicy;

const current = (spec: Partial<AlertPolicy['spec']> = {}): AlertPolicy => ({
  apiVersion: 'remediator.dev/v1alpha1',
  kind: 'AlertPolicy',
  metadata: { name: 'p', namespace: 'web', generation: 2 },
  spec: { targets: { fromLabels: ['instance_id'] }, runbookRef: { name: 'restart' }, ...spec },
});

const request = (status?: RemediationRequest['status']): RemediationRequest => ({
  metadata: { name: 'r', namespace: 'web', generation: 1, uid: 'r1' },
  spec: { policyRef: { name: 'restart-nginx' }, alert: { source: 'generic', name: 'NginxDown' } },
  ...(status && { status }),
});

describe('AlertPolicy', () => {
  test('an inline action (the schema before Runbooks) needs migrating, and the message says how', () => {
    const shape = alertPolicyShape(OLD_POLICY);
    expect(shape).toEqual({
      ok: false,
      reason: 'MigrationRequired',
      message: expect.stringContaining('kubectl remediator migrate restart-nginx -n web'),
    });
    expect(usablePolicy(OLD_POLICY)).toBeUndefined();
  });

  test('both runbookRef and the inline action: remove the action', () => {
    const both = { ...current(), spec: { ...current().spec, action: { ssm: {} } } } as AlertPolicy;
    expect(alertPolicyShape(both)).toMatchObject({ reason: 'MigrationRequired', message: expect.stringContaining('remove spec.action') });
  });

  test('a current policy passes, and is handed on as it is', () => {
    const p = current({ match: { labels: [{ name: 'a', op: '=', value: 'b' }] } });
    expect(alertPolicyShape(p)).toEqual({ ok: true });
    expect(usablePolicy(p)).toBe(p);
  });

  test('missing or mistyped fields are named by path', () => {
    const noRef = current();
    delete (noRef.spec as Partial<AlertPolicy['spec']>).runbookRef;
    expect(alertPolicyShape(noRef)).toMatchObject({
      reason: 'StoredShapeInvalid',
      message: expect.stringContaining('spec.runbookRef is required'),
    });
    const noTargets = current();
    delete (noTargets.spec as Partial<AlertPolicy['spec']>).targets;
    expect(alertPolicyShape(noTargets)).toMatchObject({ message: expect.stringContaining('spec.targets is required') });
    const wrong = current({ match: { labels: { name: 'x' } as never } });
    expect(alertPolicyShape(wrong)).toMatchObject({ message: expect.stringContaining('spec.match.labels must be an array, is object') });
    const badEnum = current({ risk: 'Extreme' as never });
    expect(alertPolicyShape(badEnum)).toMatchObject({
      message: expect.stringContaining('spec.risk must be one of Low, Medium, High, Critical'),
    });
  });
});

describe('RemediationRequest', () => {
  test('Pending, with a policy of the old schema: fails before anything runs', () => {
    const shape = requestShape(request(), OLD_POLICY);
    expect(shape).toMatchObject({ reason: 'MigrationRequired', message: expect.stringContaining('Nothing ran for this request') });
    const step = storedShapeTransition(request(), OLD_POLICY, new Transitions(clock));
    expect(step?.status).toMatchObject({ phase: 'Failed', reason: 'MigrationRequired' });
    expect(step?.status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'MigrationRequired' });
  });

  test('waiting for approval without a plan (an older controller): cannot be approved, nothing ran', () => {
    const shape = requestShape(request({ phase: 'AwaitingApproval' }), current());
    expect(shape).toMatchObject({
      reason: 'StoredShapeInvalid',
      message: expect.stringContaining('status.plan is missing in phase AwaitingApproval'),
    });
    expect(shape.ok || shape.message).toContain('cannot be approved as stored');
  });

  test('executing without a plan: not followed, and nothing is sent again', () => {
    const rr = request({ phase: 'Executing', execution: { ssm: { commandId: 'c-1' } } } as RemediationRequest['status']);
    const shape = requestShape(rr, undefined);
    expect(shape.ok || shape.message).toContain('nothing is sent again');
  });

  test('an ended request needs nothing more, whatever its policy', () => {
    expect(requestShape(request({ phase: 'Succeeded' }), OLD_POLICY)).toEqual({ ok: true });
    expect(storedShapeTransition(request({ phase: 'Failed' }), OLD_POLICY, new Transitions(clock))).toBeUndefined();
  });
});

describe('Runbook', () => {
  const runbook = (spec: Record<string, unknown>): Runbook =>
    ({ apiVersion: 'remediator.dev/v1alpha1', kind: 'Runbook', metadata: { name: 'rb', generation: 3 }, spec }) as unknown as Runbook;

  test('without an action it is named; the reconciler writes Ready=False and Stalled once, with an Event', async () => {
    const rb = runbook({ namespaceSelector: {} });
    expect(runbookShape(rb)).toMatchObject({ reason: 'StoredShapeInvalid', message: expect.stringContaining('spec.action is required') });
    let stored: Runbook = rb;
    const writes: Runbook[] = [];
    const events: string[] = [];
    const reconciler = new RunbookReconciler({
      getRunbook: () => stored,
      replaceStatus: async (_name, body) => {
        writes.push(body);
        stored = body;
      },
      events: { record: async (_o: KubeObject, type, reason) => void events.push(`${type}/${reason}`) },
      clock,
      allowedDocuments: new Set(['AWS-RunShellScript']),
    });
    await reconciler.reconcile({ namespace: '', name: 'rb' }, log);
    await reconciler.reconcile({ namespace: '', name: 'rb' }, log);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.status?.conditions?.[0]).toMatchObject({
      type: 'Ready',
      status: 'False',
      reason: 'StoredShapeInvalid',
      observedGeneration: 3,
    });
    expect(writes[0]!.status?.observedGeneration).toBe(3);
    // A final verdict for GitOps health checks: Stalled, not "in progress" until a timeout.
    expect(writes[0]!.status?.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'StoredShapeInvalid',
    });
    expect(events).toEqual(['Warning/StoredShapeInvalid']);
  });

  test('a current one passes', () => {
    const rb = runbook({ namespaceSelector: {}, action: { ssm: { parameters: [{ name: 'commands', values: ['uptime'] }] } } });
    expect(runbookShape(rb)).toEqual({ ok: true });
  });
});

describe('the request reconciler, on the fakes', () => {
  function world(policy?: AlertPolicy) {
    const clock = { now: () => Date.parse('2030-01-01T00:00:00Z') };
    const { policies, runbooks } = catalog();
    if (policy) policies.set('one', { ...policy, metadata: { ...policy.metadata, name: 'one', namespace: FAKE_NS } });
    const w = {
      server: new FakeApiServer(),
      ssm: new FakeSsm(clock),
      sns: new FakeSns(clock),
      storage: new MemoryLedgerStorage(),
      clock,
      policies,
      runbooks,
    };
    const create = (status?: RemediationRequest['status']) =>
      w.server.create({
        apiVersion: 'remediator.dev/v1alpha1',
        kind: 'RemediationRequest',
        metadata: { name: 'old', namespace: FAKE_NS, uid: 'u-old' },
        spec: { policyRef: { name: 'one' }, alert: { source: 'generic', name: 'Down', labels: { instance_id: 'i-0123456789abcdef0' } } },
        ...(status && { status }),
      });
    return { w, create, stored: () => w.server.objects.get(`${FAKE_NS}/old`)! };
  }

  test('an Executing request of an older controller (no plan) ends Failed; no command is sent or looked for again', async () => {
    const { w, create, stored } = world();
    create({
      phase: 'Executing',
      execution: { ssm: { commandId: 'cmd-old', requestedAt: '2029-12-31T23:59:00Z' } },
    } as RemediationRequest['status']);
    const c = new FakeController('c', w);
    await c.start();
    await c.reconcile(`${FAKE_NS}/old`);
    expect(stored().status).toMatchObject({ phase: 'Failed', reason: 'StoredShapeInvalid' });
    expect(stored().status?.message).toContain('nothing is sent again');
    c.cache.sync();
    await c.reconcile(`${FAKE_NS}/old`);
    expect(w.ssm.calls).toEqual([]);
  });

  test('a Pending request whose policy has the old inline action ends Failed (MigrationRequired) before anything runs', async () => {
    const { w, create, stored } = world(OLD_POLICY);
    create();
    const c = new FakeController('c', w);
    await c.start();
    await c.reconcile(`${FAKE_NS}/old`);
    expect(stored().status).toMatchObject({ phase: 'Failed', reason: 'MigrationRequired' });
    expect(w.ssm.calls).toEqual([]);
  });

  test('the same request with a current policy runs (the hook lets it through)', async () => {
    const { w, create, stored } = world();
    create();
    const c = new FakeController('c', w);
    await c.start();
    await c.reconcile(`${FAKE_NS}/old`);
    expect(stored().status?.phase).not.toBe('Failed');
    expect(w.ssm.calls.length).toBeGreaterThan(0);
  });
});
