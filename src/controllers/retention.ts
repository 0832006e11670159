/**
 * Retention of finished requests, as Jobs have it: a request is deleted `ttlAfterFinished`
 * after it reached an end phase, and a policy keeps at most `historyLimit` finished
 * requests (the oldest go first). What must outlive a request — who asked, who approved,
 * what ran where, how it ended — is in the execution ledger (ledger.ts) for as long as a
 * safety rule needs it, in the audit record (audit.ts), which both deletions write first
 * and which holds a deletion while the sink refuses it, and in the audit log line and the
 * Event written when it ended. Pure functions; the request and policy controllers act on them.
 *
 * A request a GitOps tool applied (Flux's kustomize-controller labels what it applies;
 * Argo CD annotates it with its tracking id) is Git's to delete, not retention's: deleted
 * here, the next sync would create it again (the run guard then skips it, request/rerun.ts)
 * and a health check waiting on it in between would fail on NotFound. Git's prune removes
 * it once it leaves the repository. Whoever may create a request may set those marks, and
 * gains nothing by it: the request stays in their own namespace until they delete it.
 */
import { END_PHASES, parseDuration, type AlertPolicy, type RemediationRequest } from '../api/v1alpha1/index.js';

/** The controller-wide defaults (`--retention-ttl-after-finished`, `--retention-history-limit`). */
export interface RetentionDefaults {
  ttlAfterFinishedMs: number;
  historyLimit: number;
}

export const DEFAULT_RETENTION: RetentionDefaults = { ttlAfterFinishedMs: 24 * 3_600_000, historyLimit: 100 };

export function retentionOf(policy: AlertPolicy | undefined, defaults: RetentionDefaults): RetentionDefaults {
  const r = policy?.spec.retention;
  return {
    ttlAfterFinishedMs: r?.ttlAfterFinished !== undefined ? parseDuration(r.ttlAfterFinished) : defaults.ttlAfterFinishedMs,
    historyLimit: r?.historyLimit ?? defaults.historyLimit,
  };
}

/** Milliseconds until a finished request is due for deletion (0 or less: due now); undefined while it has not finished. */
export function ttlLeftMs(rr: RemediationRequest, retention: RetentionDefaults, now: number): number | undefined {
  if (appliedFromGit(rr)) return undefined;
  const phase = rr.status?.phase;
  const done = Date.parse(rr.status?.completionTime ?? '');
  if (!phase || !END_PHASES.has(phase) || !Number.isFinite(done)) return undefined;
  return done + retention.ttlAfterFinishedMs - now;
}

/** A policy's finished requests beyond its history limit, oldest first. */
export function beyondHistoryLimit(requests: readonly RemediationRequest[], historyLimit: number): RemediationRequest[] {
  const finished = requests
    .filter(
      (r) =>
        r.status?.phase &&
        END_PHASES.has(r.status.phase) &&
        r.status.completionTime &&
        !r.metadata?.deletionTimestamp &&
        !appliedFromGit(r),
    )
    .sort(
      (a, b) =>
        (b.status?.completionTime ?? '').localeCompare(a.status?.completionTime ?? '') ||
        (b.metadata?.name ?? '').localeCompare(a.metadata?.name ?? ''),
    );
  return finished.slice(historyLimit).reverse();
}

/** The marks Flux (a label) and Argo CD (an annotation, its default tracking method) put on what they apply. */
const FLUX_LABEL = 'kustomize.toolkit.fluxcd.io/name';
const ARGOCD_ANNOTATION = 'argocd.argoproj.io/tracking-id';

/** What of a request's metadata says a GitOps tool applied it: the lean request cache keeps it (caches.ts). */
export function gitOpsMarks(m: { labels?: Record<string, string>; annotations?: Record<string, string> }): {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
} {
  const label = m.labels?.[FLUX_LABEL];
  const annotation = m.annotations?.[ARGOCD_ANNOTATION];
  return { ...(label && { labels: { [FLUX_LABEL]: label } }), ...(annotation && { annotations: { [ARGOCD_ANNOTATION]: annotation } }) };
}

/** Whether a GitOps tool applied `rr` (see the file comment). */
export function appliedFromGit(rr: RemediationRequest): boolean {
  return Boolean(rr.metadata?.labels?.[FLUX_LABEL] || rr.metadata?.annotations?.[ARGOCD_ANNOTATION]);
}
