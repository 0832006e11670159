/**
 * What enqueues the RemediationRequest controller (its `SetupWithManager`): the request
 * itself, and every change that can turn a waiting request's answer — its policy's spec,
 * its namespace's labels (which runbooks it is granted, which admission bindings cover
 * it), and the admission policy and bindings that decide whether approvals are honoured.
 * Handlers only queue keys; the reconciler (reconciler.ts) reads current state from the
 * caches. The manager (src/runtime/manager.ts) starts the controller while leading.
 */
import type { AlertPolicy, RemediationRequest } from '../../api/v1alpha1/index.js';
import type { NamespaceObject } from '../../kube/cluster.js';
import type { Controller, Reconciler } from '../../runtime/controller.js';
import type { Cache, InformerEvent } from '../../runtime/informer.js';
import type { Enqueue, Manager } from '../../runtime/manager.js';
import type { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from '../../api/admissionregistration/v1.js';

/** The caches this controller watches. */
export interface RequestWatches {
  requests: Cache<RemediationRequest>;
  policies: Cache<AlertPolicy>;
  namespaces: Cache<NamespaceObject>;
  admissionPolicies: Cache<ValidatingAdmissionPolicy>;
  admissionBindings: Cache<ValidatingAdmissionPolicyBinding>;
}

export interface RequestControllerSetup {
  reconciler: Reconciler;
  concurrency: number;
  /** One policy's requests (the cache's policy index). */
  requestsOf(namespace: string, policy: string): RemediationRequest[];
  /** Whether this controller watches the namespace (`--watch-namespace`). */
  watched(namespace: string): boolean;
}

/** A request that waits on something outside it: a policy that may become usable, an approval that may be honoured. */
const waiting = (r: RemediationRequest) => {
  const phase = r.status?.phase ?? 'Pending';
  return phase === 'AwaitingApproval' || phase === 'Pending';
};

/** Added, deleted, or a new generation; a status write or a resync is not a change of spec. */
const specChanged = (e: InformerEvent<AlertPolicy>) =>
  e.type === 'add' || e.type === 'delete' || (e.type === 'update' && e.old.metadata?.generation !== e.object.metadata?.generation);

export function setupRequestController(mgr: Manager<RequestWatches>, setup: RequestControllerSetup): Controller {
  const { requests } = mgr.caches;
  const requeueWaiting = (queue: Enqueue, filter: (r: RemediationRequest) => boolean) => {
    for (const r of requests.list()) {
      if (waiting(r) && filter(r)) queue.add({ namespace: r.metadata?.namespace ?? '', name: r.metadata?.name ?? '' });
    }
  };
  return (
    mgr
      .controller({ name: 'remediationrequest', reconciler: setup.reconciler, concurrency: setup.concurrency })
      .watches(mgr.caches.requests, (e, queue) =>
        queue.add({ namespace: e.object.metadata?.namespace ?? '', name: e.object.metadata?.name ?? '' }),
      )
      // A policy appeared, went, or its spec changed (generation): its requests' plans may change.
      .watches(mgr.caches.policies, (e, queue) => {
        if (!specChanged(e)) return;
        const ns = e.object.metadata?.namespace ?? '';
        for (const r of setup.requestsOf(ns, e.object.metadata?.name ?? '')) queue.add({ namespace: ns, name: r.metadata?.name ?? '' });
      })
      .watches(mgr.caches.namespaces, (e, queue) => {
        const ns = e.object.metadata?.name ?? '';
        if (setup.watched(ns)) requeueWaiting(queue, (r) => r.metadata?.namespace === ns);
      })
      // The admission policy or a binding changed: approvals may have become honoured (or not).
      .watches(mgr.caches.admissionPolicies, (_e, queue) => requeueWaiting(queue, () => true))
      .watches(mgr.caches.admissionBindings, (_e, queue) => requeueWaiting(queue, () => true)).controller
  );
}
