/**
 * RunbookReconciler owns a Runbook's `Ready` condition: what only the controller can
 * judge (the SSM document allowlist, RE2 patterns, templates and the inputs they use;
 * the API server already enforced the schema). Policies that use a runbook are queued
 * again by the operator whenever it changes.
 */
import { sameJson } from '../runtime/same-json.js';
import type { Logger } from 'pino';
import { API_VERSION, RUNBOOK, type Runbook, type RunbookStatus } from '../api/v1alpha1/index.js';
import type { EventRecorder } from '../kube/resources.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import { findCondition, setCondition } from '../runtime/conditions.js';
import type { Reconciler, Request, Result } from '../runtime/controller.js';
import { withReadinessKstatus } from './kstatus.js';
import { runbookProblems } from './runbook-grant.js';
import { heldForStoredShape, runbookShape } from './stored-shape.js';

export interface RunbookReconcilerDeps {
  getRunbook(name: string): Runbook | undefined;
  replaceStatus(name: string, body: Runbook): Promise<unknown>;
  events: EventRecorder;
  clock: Clock;
  allowedDocuments: ReadonlySet<string>;
}

export class RunbookReconciler implements Reconciler {
  constructor(private readonly deps: RunbookReconcilerDeps) {}

  async reconcile(req: Request, log: Logger): Promise<Result | void> {
    const runbook = this.deps.getRunbook(req.name);
    if (!runbook || runbook.metadata?.deletionTimestamp) return;
    if (
      await heldForStoredShape(
        runbook,
        runbookShape(runbook),
        { ...this.deps, writeStatus: (b) => this.deps.replaceStatus(req.name, b) },
        log,
      )
    )
      return;
    const generation = runbook.metadata?.generation;
    const problems = runbookProblems(runbook, this.deps.allowedDocuments);
    const status: RunbookStatus = structuredClone(runbook.status ?? {});
    const was = findCondition(status.conditions, 'Ready')?.status;
    status.conditions = setCondition(
      status.conditions,
      problems.length === 0
        ? { type: 'Ready', status: 'True', reason: 'Valid', message: 'runbook is valid', observedGeneration: generation }
        : {
            type: 'Ready',
            status: 'False',
            reason: 'InvalidSpec',
            message: `fix the runbook: ${problems.join('; ')}`,
            observedGeneration: generation,
          },
      isoNow(this.deps.clock),
    );
    withReadinessKstatus(status, generation, isoNow(this.deps.clock));
    if (sameJson(status, runbook.status ?? {})) return;
    const body: Runbook = { apiVersion: API_VERSION, kind: RUNBOOK.kind, metadata: runbook.metadata, spec: runbook.spec, status };
    await this.deps.replaceStatus(req.name, body);
    const now = findCondition(status.conditions, 'Ready');
    if (now && now.status !== was) {
      void this.deps.events.record(body, now.status === 'True' ? 'Normal' : 'Warning', now.reason, now.message);
      log.info({ ready: now.status }, 'runbook readiness changed');
    }
  }
}
