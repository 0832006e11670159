/**
 * The page's hook for the durable audit record (issue 23's audit sink and `kubectl
 * remediator history`): the history view renders whatever a HistorySource returns.
 * The server takes one as an option; until the audit record's reader is wired in (one
 * line in plugin.ts where `serveUi` is called), the view says that no history source
 * is configured instead of showing an empty list as if nothing had happened.
 */

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
