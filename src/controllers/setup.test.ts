import { pino } from 'pino';
import type { AlertPolicy, RemediationRequest, Runbook } from '../api/v1alpha1/index.js';
import type { NamespaceObject } from '../kube/cluster.js';
import { Metrics } from '../observability/metrics.js';
import type { Cache, InformerEvent } from '../runtime/informer.js';
import { Manager } from '../runtime/manager.js';
import type { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from '../api/admissionregistration/v1.js';
import { ledgerChanged, POLICY_RECOUNT_DELAY_MS, setupAlertPolicyController } from './alertpolicy-setup.js';
import { setupRequestController } from './request/setup.js';
import { setupRunbookController } from './runbook-setup.js';

/** A cache holding what the test puts in it, that emits what the test hands it. */
class FakeCache<T extends { metadata?: { name?: string; namespace?: string } }> implements Cache<T> {
  readonly items: T[] = [];
  private readonly handlers: Array<(e: InformerEvent<T>) => void> = [];
  readonly hasSynced = true;
  get(key: string) {
    return this.items.find((o) => `${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}` === key);
  }
  list() {
    return [...this.items];
  }
  byIndex(): T[] {
    return [];
  }
  waitForSync() {
    return Promise.resolve();
  }
  on(h: (e: InformerEvent<T>) => void) {
    this.handlers.push(h);
  }
  start() {}
  stop() {}
  emit(e: InformerEvent<T>) {
    for (const h of this.handlers) h(e);
  }
}

const policy = (ns: string, name: string, runbook = 'rb', generation = 1): AlertPolicy =>
  ({ metadata: { namespace: ns, name, generation }, spec: { runbookRef: { name: runbook } } }) as unknown as AlertPolicy;
const request = (ns: string, name: string, policyName: string, phase?: string): RemediationRequest =>
  ({
    metadata: { namespace: ns, name },
    spec: { policyRef: { name: policyName } },
    status: phase ? { phase } : {},
  }) as unknown as RemediationRequest;

/** Wires the three controllers as src/operator.ts does, with reconcilers that never run; records what each queue is given. */
function wire(watchedNamespaces: string[] = []) {
  const caches = {
    policies: new FakeCache<AlertPolicy>(),
    requests: new FakeCache<RemediationRequest>(),
    runbooks: new FakeCache<Runbook>(),
    namespaces: new FakeCache<NamespaceObject>(),
    admissionPolicies: new FakeCache<ValidatingAdmissionPolicy>(),
    admissionBindings: new FakeCache<ValidatingAdmissionPolicyBinding>(),
  };
  const mgr = new Manager({ caches, logger: pino({ level: 'silent' }), metrics: new Metrics(false) });
  const reconciler = { reconcile: async () => undefined };
  const watched = (ns: string) => watchedNamespaces.length === 0 || watchedNamespaces.includes(ns);
  const runbook = setupRunbookController(mgr, reconciler);
  const policyC = setupAlertPolicyController(mgr, { reconciler, watched });
  const requestsOf = (ns: string, p: string) =>
    caches.requests.items.filter((r) => r.metadata?.namespace === ns && r.spec.policyRef.name === p);
  const requestC = setupRequestController(mgr, { reconciler, watched, concurrency: 1, requestsOf });
  const added = { runbook: [] as string[], alertpolicy: [] as string[], remediationrequest: [] as string[] };
  const later: string[] = [];
  for (const [c, name] of [
    [runbook, 'runbook'],
    [policyC, 'alertpolicy'],
    [requestC, 'remediationrequest'],
  ] as const) {
    c.enqueue = (r) => void added[name].push(`${r.namespace}/${r.name}`);
    c.enqueueAfter = (r, ms) => void later.push(`${name} ${r.namespace}/${r.name} after ${ms}`);
  }
  return { caches, added, later, policyC };
}

describe('what enqueues each controller (the setup files)', () => {
  test('a request change enqueues the request now and its policy once, a few seconds later', () => {
    const { caches, added, later } = wire();
    caches.requests.emit({ type: 'update', object: request('team', 'rr-1', 'p'), old: request('team', 'rr-1', 'p') });
    expect(added).toEqual({ runbook: [], alertpolicy: [], remediationrequest: ['team/rr-1'] });
    expect(later).toEqual([`alertpolicy team/p after ${POLICY_RECOUNT_DELAY_MS}`]);
  });

  test("a policy's status write waits for the next recount and enqueues no request; a new generation or annotation enqueues them now", () => {
    const { caches, added, later } = wire();
    caches.requests.items.push(request('team', 'rr-1', 'p'), request('team', 'rr-2', 'p'), request('team', 'other', 'q'));
    caches.policies.emit({ type: 'update', object: policy('team', 'p'), old: policy('team', 'p') });
    expect(added.remediationrequest).toEqual([]);
    expect(added.alertpolicy).toEqual([]);
    expect(later).toEqual([`alertpolicy team/p after ${POLICY_RECOUNT_DELAY_MS}`]);
    caches.policies.emit({ type: 'update', object: policy('team', 'p', 'rb', 2), old: policy('team', 'p') });
    expect(added).toEqual({ runbook: [], alertpolicy: ['team/p'], remediationrequest: ['team/rr-1', 'team/rr-2'] });
    // A breaker reset is an annotation: looked at at once.
    const reset = policy('team', 'p', 'rb', 2);
    reset.metadata = { ...reset.metadata, annotations: { 'remediator.dev/circuit-reset-at': 'token' } };
    caches.policies.emit({ type: 'update', object: reset, old: policy('team', 'p', 'rb', 2) });
    expect(added.alertpolicy).toEqual(['team/p', 'team/p']);
  });

  test('a ledger change shows a failure at once and lets a success wait for the recount', () => {
    const { added, later, policyC } = wire();
    ledgerChanged(policyC, 'team', 'p', false);
    expect(added.alertpolicy).toEqual([]);
    expect(later).toEqual([`alertpolicy team/p after ${POLICY_RECOUNT_DELAY_MS}`]);
    ledgerChanged(policyC, 'team', 'p', true);
    expect(added.alertpolicy).toEqual(['team/p']);
  });

  test('a runbook change enqueues the runbook and the policies that use it', () => {
    const { caches, added } = wire();
    caches.policies.items.push(policy('a', 'uses', 'rb'), policy('b', 'other', 'rb2'));
    caches.runbooks.emit({ type: 'add', object: { metadata: { name: 'rb' } } as Runbook });
    expect(added).toEqual({ runbook: ['/rb'], alertpolicy: ['a/uses'], remediationrequest: [] });
  });

  test("a watched namespace's change enqueues its policies and its waiting requests only", () => {
    const { caches, added } = wire(['team']);
    caches.policies.items.push(policy('team', 'p'), policy('else', 'q'));
    caches.requests.items.push(
      request('team', 'waiting', 'p', 'AwaitingApproval'),
      request('team', 'new', 'p'),
      request('team', 'running', 'p', 'Executing'),
      request('else', 'x', 'q', 'Pending'),
    );
    caches.namespaces.emit({ type: 'update', object: { metadata: { name: 'team' } }, old: { metadata: { name: 'team' } } });
    caches.namespaces.emit({ type: 'update', object: { metadata: { name: 'unwatched' } }, old: { metadata: { name: 'unwatched' } } });
    expect(added).toEqual({ runbook: [], alertpolicy: ['team/p'], remediationrequest: ['team/waiting', 'team/new'] });
  });

  test('an admission policy or binding change enqueues every policy and every waiting request', () => {
    const { caches, added } = wire();
    caches.policies.items.push(policy('a', 'p'), policy('b', 'q'));
    caches.requests.items.push(request('a', 'w', 'p', 'Pending'), request('b', 'done', 'q', 'Succeeded'));
    caches.admissionBindings.emit({ type: 'delete', object: {} as ValidatingAdmissionPolicyBinding });
    expect(added).toEqual({ runbook: [], alertpolicy: ['a/p', 'b/q'], remediationrequest: ['a/w'] });
  });
});
