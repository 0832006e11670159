/**
 * The execution ledger's document: what the controller keeps of every execution of a
 * policy (src/controllers/ledger.ts keeps it in memory, src/kube/ledger-configmaps.ts
 * stores it as ConfigMaps that admins read with `kubectl get cm -o yaml`), and the
 * contract of its storage. A stored format, so it lives with the API: a field is only
 * ever added; a change of meaning is a new version of this file.
 */

/** How an execution ended; absent while its command runs. */
export type ExecutionOutcome = 'Succeeded' | 'Failed';

/** One execution of a policy: an intent the controller recorded before sending anything. */
export interface ExecutionRecord {
  /** The request's UID: a request recreated under the same name is another request. */
  uid: string;
  request: string;
  targets: readonly string[];
  at: number;
  outcome?: ExecutionOutcome;
  endedAt?: number;
  /**
   * The verdict of the policy's spec.verify on a Succeeded execution: false when its alert
   * kept firing (Ineffective), which the circuit breaker counts as a failure.
   */
  verified?: boolean;
}

/** What the ledger keeps of one execution; it outlives the request. */
export interface LedgerEntry extends ExecutionRecord {
  runbook: string;
  requestedBy?: string;
  approver?: string;
  /** SSM command ids, or the SNS message id. */
  commandIds?: string[];
  messageId?: string;
  /** The request's run key (src/controllers/request/rerun.ts): the same request re-created never runs again. */
  runKey?: string;
}

/** What the ledger keeps of a run once its entry is pruned (src/controllers/request/rerun.ts). */
export interface RunMark {
  key: string;
  request: string;
  uid: string;
  /** When its intent was recorded (ms). */
  at: number;
  outcome?: ExecutionOutcome;
}

/** How long a policy's entries are needed, as of its last execution. */
export interface LedgerRetention {
  windowMs: number;
  lastOutcomes: number;
}

export interface LedgerDocument {
  namespace: string;
  policy: string;
  retention: LedgerRetention;
  entries: LedgerEntry[];
  /**
   * When the policy's circuit breaker opened (ms), until a trusted reset after it: open
   * stays open whatever the policy says later (an editor removing `circuitBreaker` or
   * raising its limit must not close it — only a person with the approver verb may).
   */
  breakerOpenedAt?: number;
  /** Run keys of pruned entries, kept longer than the entries (src/controllers/request/rerun.ts). */
  runs?: RunMark[];
  /** The stored version this copy was read or written as; absent before the first write. */
  resourceVersion?: string;
}

/** Where ledger documents live; only the controller's ServiceAccount may write there. */
export interface LedgerStorage {
  list(): Promise<LedgerDocument[]>;
  get(namespace: string, policy: string): Promise<LedgerDocument | undefined>;
  /**
   * Creates or replaces the document; rejects with a conflict when its resourceVersion is
   * stale. Returns the new resourceVersion. It must capture (serialize or copy) the
   * document before its first await: the ledger goes on changing it meanwhile.
   */
  save(doc: LedgerDocument): Promise<string>;
  remove(doc: LedgerDocument): Promise<void>;
  isConflict(error: unknown): boolean;
}

/** As stored: times as RFC 3339, one execution per line (readable with `kubectl get cm -o yaml`). */
export interface StoredEntry extends Omit<LedgerEntry, 'at' | 'endedAt'> {
  at: string;
  endedAt?: string;
}
