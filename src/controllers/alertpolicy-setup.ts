/**
 * What enqueues the AlertPolicy controller (its `SetupWithManager`; the reconciler is
 * alertpolicy.ts): the policy itself; a change to one of its requests (the counters are
 * recounted from the cache); its runbook; its namespace's labels (the runbook grant);
 * the admission policy and bindings (whether a breaker reset is trusted). The execution
 * ledger enqueues it too, when a policy's record changes (src/operator.ts wires that
 * through `ledgerChanged`).
 *
 * A burst changes a policy's requests and record many times a second; each change that
 * only moves a counter waits POLICY_RECOUNT_DELAY_MS and shares one recount with all the
 * others, so the policy's status is written every few seconds rather than per request.
 * What a person must see at once (the spec, an annotation such as a breaker reset, a
 * failure that may open the breaker) is looked at immediately.
 */
import type { AlertPolicy, RemediationRequest, Runbook } from '../api/v1alpha1/index.js';
import type { NamespaceObject } from '../kube/cluster.js';
import type { Controller, Reconciler } from '../runtime/controller.js';
import { sameJson } from '../runtime/same-json.js';
import type { Cache } from '../runtime/informer.js';
import type { Enqueue, Manager } from '../runtime/manager.js';
import type { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from '../api/admissionregistration/v1.js';

/**
 * How long a request's change waits before its policy's counters are recounted. Every
 * change in that time shares one recount (the work queue keeps the earliest pending
 * add), so a burst costs a policy status write every few seconds, not one per request
 * transition (and no 409 storm between them).
 */
export const POLICY_RECOUNT_DELAY_MS = 3_000;

/** The caches this controller watches. */
export interface PolicyWatches {
  policies: Cache<AlertPolicy>;
  requests: Cache<RemediationRequest>;
  runbooks: Cache<Runbook>;
  namespaces: Cache<NamespaceObject>;
  admissionPolicies: Cache<ValidatingAdmissionPolicy>;
  admissionBindings: Cache<ValidatingAdmissionPolicyBinding>;
}

export interface PolicyControllerSetup {
  reconciler: Reconciler;
  /** Whether this controller watches the namespace (`--watch-namespace`). */
  watched(namespace: string): boolean;
}

/**
 * The ledger recorded a change to a policy's executions. `urgent` (a failure, a breaker
 * opened or reset, an intent dropped) is shown at once; a success only moves counters.
 * The breaker's decision to block an execution is taken from the ledger itself
 * (request/intent.ts), never from this status, so the delay cannot make it later.
 */
export function ledgerChanged(controller: Controller | undefined, namespace: string, policy: string, urgent: boolean): void {
  if (urgent) controller?.enqueue({ namespace, name: policy });
  else controller?.enqueueAfter({ namespace, name: policy }, POLICY_RECOUNT_DELAY_MS);
}

/**
 * Whether an update of a policy changes more than its status: a write of the status alone
 * (nearly always this controller's own) waits for the next recount instead of starting
 * one, which would find the counters moved again and write once more per burst request.
 */
function onlyStatusChanged(old: AlertPolicy, cur: AlertPolicy): boolean {
  const a = old.metadata ?? {};
  const b = cur.metadata ?? {};
  return (
    a.uid === b.uid &&
    a.generation === b.generation &&
    a.deletionTimestamp === b.deletionTimestamp &&
    sameJson(a.annotations ?? {}, b.annotations ?? {}) &&
    sameJson(a.labels ?? {}, b.labels ?? {}) &&
    sameJson(a.finalizers ?? [], b.finalizers ?? [])
  );
}

export function setupAlertPolicyController(mgr: Manager<PolicyWatches>, setup: PolicyControllerSetup): Controller {
  const { policies } = mgr.caches;
  /** Policies to look at again when what they depend on changed. */
  const requeuePolicies = (queue: Enqueue, filter: (p: AlertPolicy) => boolean) => {
    for (const p of policies.list()) {
      if (filter(p)) queue.add({ namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '' });
    }
  };
  return (
    mgr
      .controller({ name: 'alertpolicy', reconciler: setup.reconciler, concurrency: 1 })
      .watches(mgr.caches.policies, (e, queue) => {
        const req = { namespace: e.object.metadata?.namespace ?? '', name: e.object.metadata?.name ?? '' };
        // Still looked at: a status someone else rewrote is recomputed at the next recount.
        if (e.type === 'update' && onlyStatusChanged(e.old, e.object)) queue.addAfter(req, POLICY_RECOUNT_DELAY_MS);
        else queue.add(req);
      })
      // Counters are recounted from the cache a moment later, once for the whole burst.
      .watches(mgr.caches.requests, (e, queue) =>
        queue.addAfter({ namespace: e.object.metadata?.namespace ?? '', name: e.object.spec.policyRef.name }, POLICY_RECOUNT_DELAY_MS),
      )
      .watches(mgr.caches.runbooks, (e, queue) => requeuePolicies(queue, (p) => p.spec.runbookRef?.name === e.object.metadata?.name))
      .watches(mgr.caches.namespaces, (e, queue) => {
        const ns = e.object.metadata?.name ?? '';
        if (setup.watched(ns)) requeuePolicies(queue, (p) => p.metadata?.namespace === ns);
      })
      .watches(mgr.caches.admissionPolicies, (_e, queue) => requeuePolicies(queue, () => true))
      .watches(mgr.caches.admissionBindings, (_e, queue) => requeuePolicies(queue, () => true)).controller
  );
}
