/**
 * What enqueues the Runbook controller (its `SetupWithManager`; the reconciler is
 * runbook-reconciler.ts): only the Runbook itself. The policies that use a runbook are enqueued
 * by the AlertPolicy controller's own watch of runbooks (alertpolicy-setup.ts).
 */
import type { Runbook } from '../api/v1alpha1/index.js';
import type { Controller, Reconciler } from '../runtime/controller.js';
import type { Cache } from '../runtime/informer.js';
import type { Manager } from '../runtime/manager.js';

export interface RunbookWatches {
  runbooks: Cache<Runbook>;
}

export function setupRunbookController(mgr: Manager<RunbookWatches>, reconciler: Reconciler): Controller {
  return mgr
    .controller({ name: 'runbook', reconciler, concurrency: 1 })
    .watches(mgr.caches.runbooks, (e, queue) => queue.add({ namespace: '', name: e.object.metadata?.name ?? '' })).controller;
}
