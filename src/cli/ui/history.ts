/**
 * The page's view of the durable audit record (the audit sink, as `kubectl remediator
 * history` reads it): the history view renders whatever a HistorySource returns.
 * `auditHistorySource` is the one plugin.ts passes when a sink is named (the same flags
 * and variables as `history`); without one the view says that no history source is
 * configured instead of showing an empty list as if nothing had happened.
 */
import type { AuditSinkConfig } from '../../cloud/audit-sink.js';
import { readHistory, type NamespaceHistory } from '../history.js';
import { sinkDescription } from '../sink-flags.js';

/** One finished request as the audit record keeps it: what the history view shows. */
export interface HistoryEntry {
  namespace: string;
  name: string;
  /** The end phase: Succeeded, Failed, Rejected, ... */
  outcome: string;
  finishedAt?: string;
  requestedBy?: string;
  approver?: string;
  decision?: string;
  planDigest?: string;
  alert?: string;
  /** Whether the record's place in its digest chain checked out, when the source verifies it. */
  verified?: boolean;
}

export interface HistorySource {
  /** Where the records come from, for the page (e.g. "CloudWatch Logs group /remediator/audit"). */
  readonly description: string;
  /** Records of `namespace` (every namespace the user may read when undefined), newest first. */
  list(namespace: string | undefined): Promise<HistoryEntry[]>;
}

/**
 * The entries of what readHistory returned, newest first. A record is verified when the
 * chain check found no problem at its position (its digest matches its content, it links
 * to the record before it, no position before it is missing, no other record claims it).
 */
export function historyEntries(histories: readonly NamespaceHistory[]): HistoryEntry[] {
  const entries: Array<HistoryEntry & { sequence: number; at: number }> = [];
  for (const h of histories) {
    const broken = new Set(h.verdict.problems.map((p) => p.sequence).filter((s): s is number => s !== undefined));
    for (const r of h.records) {
      const finishedAt = r.outcome.completionTime ?? r.recordedAt;
      const planDigest = r.plan?.digest ?? r.approval?.planDigest;
      entries.push({
        // The stream's namespace, where the chain was checked, not what the record claims.
        namespace: h.namespace,
        name: r.request.name,
        outcome: r.outcome.phase,
        finishedAt,
        ...(r.request.requestedBy !== undefined && { requestedBy: r.request.requestedBy }),
        ...(r.approval && { approver: r.approval.approver, decision: r.approval.decision }),
        ...(planDigest !== undefined && { planDigest }),
        alert: `${r.alert.source}/${r.alert.name}`,
        verified: !broken.has(r.sequence),
        sequence: r.sequence,
        at: Date.parse(finishedAt) || 0,
      });
    }
  }
  entries.sort((a, b) => b.at - a.at || a.namespace.localeCompare(b.namespace) || b.sequence - a.sequence);
  return entries.map(({ sequence: _sequence, at: _at, ...e }) => e);
}

/** The records of `sink`, read with the user's own AWS credentials (the SDK's default chain in `env`). */
export function auditHistorySource(sink: AuditSinkConfig, env: NodeJS.ProcessEnv = process.env): HistorySource {
  return {
    description: sinkDescription(sink, env),
    list: async (namespace) => historyEntries(await readHistory(sink, namespace === undefined ? undefined : [namespace], env)),
  };
}
