/**
 * What enqueues the AlertPolicy controller (its `SetupWithManager`; the reconciler is
 * alertpolicy.ts): the policy itself; a change to one of its requests (the counters are
 * recounted from the cache); its runbook; its namespace's labels (the runbook grant);
 * the admission policy and bindings (whether a breaker reset is trusted). The execution
 * ledger enqueues it too, when a policy's record changes (src/operator.ts wires that).
 */
import type { AlertPolicy, RemediationRequest, Runbook } from '../api/v1alpha1/index.js';
import type { NamespaceObject } from '../kube/cluster.js';
import type { Controller, Reconciler } from '../runtime/controller.js';
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
      .watches(mgr.caches.policies, (e, queue) =>
        queue.add({ namespace: e.object.metadata?.namespace ?? '', name: e.object.metadata?.name ?? '' }),
      )
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
