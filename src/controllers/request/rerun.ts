/**
 * A request that already ran never runs again: the same request re-created after it
 * ended — deleted by retention and re-applied by a GitOps sync, `kubectl delete` and
 * `apply` again, a prune and a re-sync — is recognised from the execution ledger and ends
 * Skipped (reason AlreadyRan) before anything is planned, whatever the policy's cooldown
 * says by then.
 *
 * "The same request" is its run key: a digest of namespace, name and spec (without
 * `spec.approval`, which a person gives in the cluster). The intent records the key in
 * its ledger entry (intent.ts), in the same ledger write that must be stored before the
 * status may say Executing; so a request that could have sent anything has its key on
 * record, through crashes and leader changes (the ledger is loaded before any
 * reconcile). A crash between that write and the status write leaves a key for a run
 * that never happened: the copy is then refused once too often, never run twice — the
 * ledger's own rule (ledger.ts). Two requests of one name never exist at once (the API
 * server refuses the second create while the first, held by its execution finalizer
 * until settled, still exists), so a key recorded under another UID is an earlier life.
 *
 * Ledger entries live only as long as the safety rules need them; when one is pruned its
 * key is kept as a run mark (`LedgerDocument.runs`), for RUN_MARK_RETENTION_MS and at
 * most MAX_RUN_MARKS per policy, newest kept.
 *
 * A deliberate re-run is a new request: a new name (in Git, a new file or a date in the
 * name), or a changed spec. No annotation can ask for it: anyone who may create a request
 * may pick a new name, so such an annotation would grant nothing, and one field fewer is
 * one field fewer to trust (docs/gitops.md).
 */
import { createHash } from 'node:crypto';
import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import type { LedgerDocument, LedgerEntry, RunMark } from '../../api/ledger/v1.js';
import type { ExecutionLedger } from '../ledger.js';

/** How long a run mark is kept after its intent: longer than any sensible retention or GitOps outage. */
export const RUN_MARK_RETENTION_MS = 90 * 24 * 3_600_000;
/** Run marks one policy's document holds at most (about 150 bytes each; a ConfigMap holds 1 MiB). */
export const MAX_RUN_MARKS = 1000;

/** JSON with object keys sorted, so the key does not depend on the order fields were written in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The run key of a request: namespace, name and spec without the approval. */
export function runKeyOf(rr: RemediationRequest): string {
  const { approval: _approval, ...spec } = rr.spec;
  const identity = canonical({ namespace: rr.metadata?.namespace ?? '', name: rr.metadata?.name ?? '', spec });
  return createHash('sha256').update(identity).digest('base64url').slice(0, 32);
}

/** The ledger fields an intent records for the run guard. */
export function runMark(rr: RemediationRequest): Pick<LedgerEntry, 'runKey'> {
  return { runKey: runKeyOf(rr) };
}

/**
 * Why `rr` must not run (a message for status), or undefined when no earlier life of it
 * ran: a ledger entry or run mark with its run key under another UID.
 */
export function alreadyRan(
  rr: RemediationRequest,
  entries: readonly LedgerEntry[],
  marks: readonly RunMark[],
  now: number,
): string | undefined {
  const uid = rr.metadata?.uid ?? '';
  const key = runKeyOf(rr);
  const earlier =
    entries.find((e) => e.runKey === key && e.uid !== uid) ??
    marks.find((m) => m.key === key && m.uid !== uid && now - m.at < RUN_MARK_RETENTION_MS);
  if (!earlier) return undefined;
  const outcome = earlier.outcome ? `; it ended ${earlier.outcome}` : '';
  return (
    `this request (same name and spec) already ran as UID ${earlier.uid}, intent recorded ${new Date(earlier.at).toISOString()}${outcome}; ` +
    'nothing was run again. To run it again on purpose, create it under a new name'
  );
}

/** alreadyRan, on the ledger's record of the request's policy: the reconciler's hook. */
export function ranBefore(ledger: ExecutionLedger, rr: RemediationRequest, now: number): string | undefined {
  const ns = rr.metadata?.namespace ?? '';
  const policy = rr.spec.policyRef.name;
  return alreadyRan(rr, ledger.records(ns, policy), ledger.runMarks(ns, policy), now);
}

/**
 * Keeps the run keys of the entries a prune dropped as run marks (called by the ledger
 * with each write's prune), then bounds the marks.
 */
export function keepRunMarks(doc: LedgerDocument, dropped: readonly LedgerEntry[], now: number): void {
  const added: RunMark[] = dropped
    .filter((e): e is LedgerEntry & { runKey: string } => e.runKey !== undefined)
    .map((e) => ({ key: e.runKey, request: e.request, uid: e.uid, at: e.at, ...(e.outcome && { outcome: e.outcome }) }));
  if (added.length === 0 && !doc.runs?.length) return;
  const byUid = new Map<string, RunMark>();
  for (const m of [...(doc.runs ?? []), ...added]) if (now - m.at < RUN_MARK_RETENTION_MS) byUid.set(m.uid, m);
  const runs = [...byUid.values()].sort((a, b) => a.at - b.at).slice(-MAX_RUN_MARKS);
  if (runs.length > 0) doc.runs = runs;
  else delete doc.runs;
}

/** Adds to `mine` the run marks of `theirs` it lacks (a conflicting write from another leader). */
export function mergeRunMarks(mine: LedgerDocument, theirs: LedgerDocument | undefined): void {
  const missing = (theirs?.runs ?? []).filter((m) => !mine.runs?.some((x) => x.uid === m.uid));
  if (missing.length > 0) mine.runs = [...(mine.runs ?? []), ...missing].sort((a, b) => a.at - b.at);
}
