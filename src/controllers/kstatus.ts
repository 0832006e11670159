/**
 * kstatus-compatible status for every kind, derived in one place: the conditions GitOps
 * tools read to tell "done", "still working" and "stuck for good" apart. Flux's health
 * checks (`wait: true`, `healthChecks`) and `kubectl`'s own waits use the kstatus rules
 * of sigs.k8s.io/cli-utils: a status whose `observedGeneration` is behind
 * `metadata.generation` is InProgress; `Reconciling=True` is InProgress; `Stalled=True`
 * is Failed (a final verdict, no waiting for a timeout); otherwise `Ready=True` is
 * Current and `Ready=False`/`Unknown` is InProgress. So:
 *
 *  - RemediationRequest: the ends a user asked for or accepts (Succeeded, and the
 *    deliberate Skipped, Cancelled, Rejected) are `Ready=True`; Failed and Expired are
 *    `Ready=False` with `Stalled=True`; a request in progress is `Ready=Unknown` with
 *    `Reconciling=True`, unless AWS denies the controller a call (`CloudAccess=False`),
 *    which only a person fixing the IAM role can end: `Stalled=True`.
 *  - AlertPolicy and Runbook: `Ready=False` only ever names a spec or grant a person must
 *    fix (the controller validates synchronously), so it comes with `Stalled=True`.
 *
 * The reconcilers call these on the status they are about to write, before comparing it
 * with the stored one, so a derived condition never causes a write of its own. They
 * never move `status.observedGeneration` on a request: the request controller's
 * re-planning compares it with the generation (approval.ts), and only the handler that
 * acted on a generation may say so.
 */
import { END_PHASES, type Phase } from '../api/v1alpha1/index.js';
import { findCondition, setCondition, type Condition } from '../runtime/conditions.js';

/** The ends a GitOps tool should count as healthy: the wanted one and the deliberate ones. */
const HEALTHY_ENDS: ReadonlySet<Phase> = new Set<Phase>(['Succeeded', 'Skipped', 'Cancelled', 'Rejected']);

/** The value of a request's `Ready` condition in `phase`. */
export function requestReadiness(phase: Phase): Condition['status'] {
  if (!END_PHASES.has(phase)) return 'Unknown';
  return HEALTHY_ENDS.has(phase) ? 'True' : 'False';
}

interface StatusWithConditions {
  conditions?: Condition[];
  observedGeneration?: number;
}

interface Derived {
  type: 'Ready' | 'Reconciling' | 'Stalled';
  status: Condition['status'];
  reason: string;
  message: string;
}

/** `conditions` with Reconciling/Stalled replaced by `derived` (absent when not listed: kstatus reads absent as False). */
function apply(conditions: readonly Condition[] | undefined, derived: readonly Derived[], generation: number | undefined, now: string) {
  let list = (conditions ?? []).filter((c) => (c.type !== 'Reconciling' && c.type !== 'Stalled') || derived.some((d) => d.type === c.type));
  for (const d of derived) list = setCondition(list, { ...d, ...(generation !== undefined && { observedGeneration: generation }) }, now);
  return list;
}

/**
 * A RemediationRequest status with Ready, Reconciling and Stalled derived from its phase
 * (and its CloudAccess condition). `status` is changed in place and returned.
 */
export function withRequestKstatus<S extends StatusWithConditions & { phase?: Phase; reason?: string; message?: string }>(
  status: S,
  now: string,
): S {
  const phase = status.phase ?? 'Pending';
  const reason = status.reason ?? phase;
  const message = status.message || phase;
  const ready = requestReadiness(phase);
  const derived: Derived[] = [{ type: 'Ready', status: ready, reason, message }];
  if (ready === 'False') {
    derived.push({ type: 'Stalled', status: 'True', reason, message: `${phase}: ${message}` });
  } else if (ready === 'Unknown') {
    const access = findCondition(status.conditions, 'CloudAccess');
    if (access?.status === 'False') {
      derived.push({
        type: 'Stalled',
        status: 'True',
        reason: access.reason,
        message: `${access.message} (fix the IAM role; retried meanwhile)`,
      });
    } else {
      derived.push({ type: 'Reconciling', status: 'True', reason, message: `${phase}: ${message}` });
    }
  }
  status.conditions = apply(status.conditions, derived, status.observedGeneration, now);
  return status;
}

/**
 * An AlertPolicy or Runbook status with Stalled derived from its Ready condition, and its
 * observedGeneration set to `generation` (these kinds are validated whole on every
 * reconcile: the status written always describes the current generation).
 */
export function withReadinessKstatus<S extends StatusWithConditions>(status: S, generation: number | undefined, now: string): S {
  if (generation !== undefined) status.observedGeneration = generation;
  const ready = findCondition(status.conditions, 'Ready');
  const derived: Derived[] =
    ready?.status === 'False'
      ? [{ type: 'Stalled', status: 'True', reason: ready.reason, message: `${ready.message} (a person must change it)` }]
      : [];
  status.conditions = apply(status.conditions, derived, generation, now);
  return status;
}
