/**
 * The execution ledger: every execution of every policy (who, what, where, when, how it
 * ended), kept where only the controller writes (see src/kube/ledger-configmaps.ts), and
 * the only input of cooldown, rate limit and the circuit breaker (safety.ts). Deleting or
 * recreating a request or a policy changes nothing here; a restart or a new leader loads
 * it again before any reconcile runs.
 *
 * It is an in-memory index per namespace and policy that the leader keeps current as the
 * one writer, so a safety check and the record of an intent run with no await between
 * them (intent.ts), and persists each change before the request's own status says it
 * executes. A crash between the two leaves an entry for an execution that never
 * happened: the policy counts one execution too many until its windows pass, never one
 * too few.
 *
 * Each policy's entries are bounded by what its rules read: everything younger than the
 * longest window (cooldown, rate-limit window), the newest outcomes the breaker needs,
 * and executions still running; a hard cap keeps one policy's document small.
 */
import { parseDuration, type AlertPolicy } from '../api/v1alpha1/index.js';
import { instanceHolders, type InstanceHolder, type RequestExists } from './instance-locks.js';
import type { ExecutionOutcome, LedgerDocument, LedgerEntry, LedgerRetention, LedgerStorage, RunMark } from '../api/ledger/v1.js';
import { keepRunMarks, mergeRunMarks } from './request/rerun.js';

/** Executions whose command never reported an end are kept this long at most. */
const UNFINISHED_RETENTION_MS = 7 * 24 * 3_600_000;
/** The newest outcomes kept even past every window (the breaker's history). */
const MIN_LAST_OUTCOMES = 10;
/** Entries one policy's document holds at most (a ConfigMap holds 1 MiB). */
export const MAX_ENTRIES = 2000;

/** What a policy's rules need of its history. */
export function ledgerRetention(policy: AlertPolicy): LedgerRetention {
  const s = policy.spec.safety;
  const windows = [s?.cooldown, s?.rateLimit?.window].filter((d): d is string => d !== undefined).map(parseDuration);
  return { windowMs: Math.max(0, ...windows), lastOutcomes: Math.max(MIN_LAST_OUTCOMES, s?.circuitBreaker?.maxConsecutiveFailures ?? 0) };
}

/** The entries still needed at `now`, newest last. */
export function prune(doc: LedgerDocument, now: number): LedgerEntry[] {
  const ended = doc.entries.filter((e) => e.endedAt !== undefined).sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0));
  const lastOutcomes = new Set(ended.slice(0, doc.retention.lastOutcomes).map((e) => e.uid));
  const kept = doc.entries
    .filter(
      (e) =>
        now - e.at < doc.retention.windowMs || lastOutcomes.has(e.uid) || (e.outcome === undefined && now - e.at < UNFINISHED_RETENTION_MS),
    )
    .sort((a, b) => a.at - b.at);
  return kept.slice(-MAX_ENTRIES);
}

const key = (namespace: string, policy: string) => `${namespace}/${policy}`;

export class ExecutionLedger {
  private readonly docs = new Map<string, LedgerDocument>();
  /** The newest write per document (in flight, or queued behind the one in flight). */
  private readonly writes = new Map<string, Promise<void>>();
  /** The write per document that has not started yet: later callers share it (see persist). */
  private readonly queued = new Map<string, Promise<void>>();
  /**
   * Changes made to each document in memory, and how many of them were stored: a write
   * that would change nothing is skipped without serializing the document to find out
   * (it holds up to MAX_ENTRIES entries, and a burst persists it once per execution).
   */
  private readonly changes = new Map<string, number>();
  private readonly stored = new Map<string, number>();

  constructor(
    private readonly storage: LedgerStorage,
    private readonly clock: { now(): number },
    /**
     * Told which policy's ledger changed (its status shows the breaker); `urgent` when the
     * change may move the breaker (a failure, an ineffective run, the breaker itself, a
     * dropped intent) rather than only a success counter, which may wait for a recount.
     */
    private readonly onChange: (namespace: string, policy: string, urgent: boolean) => void = () => undefined,
  ) {}

  /** Replaces memory with what is stored: at start, and each time this replica becomes leader. */
  async load(): Promise<number> {
    const docs = await this.storage.list();
    this.docs.clear();
    this.stored.clear();
    this.changes.clear();
    for (const d of docs) {
      this.docs.set(key(d.namespace, d.policy), d);
      this.changes.set(key(d.namespace, d.policy), 0);
      this.stored.set(key(d.namespace, d.policy), 0);
    }
    return docs.length;
  }

  records(namespace: string, policy: string): readonly LedgerEntry[] {
    return this.docs.get(key(namespace, policy))?.entries ?? [];
  }

  /** The run marks of executions whose entries were pruned (request/rerun.ts). */
  runMarks(namespace: string, policy: string): readonly RunMark[] {
    return this.docs.get(key(namespace, policy))?.runs ?? [];
  }

  entry(namespace: string, policy: string, uid: string): LedgerEntry | undefined {
    return this.records(namespace, policy).find((e) => e.uid === uid);
  }

  /**
   * The instances of `instanceIds` that another running execution holds, over every
   * policy and namespace this controller loads: the instance locks (instance-locks.ts).
   */
  holders(instanceIds: readonly string[], self: string, exists: RequestExists): Map<string, InstanceHolder> {
    return instanceHolders(this.docs.values(), instanceIds, self, exists);
  }

  /** Records an intent in memory at once (one per request UID); `persist` stores it. */
  record(namespace: string, policy: string, retention: LedgerRetention, entry: LedgerEntry): void {
    const k = key(namespace, policy);
    const doc = this.docs.get(k) ?? { namespace, policy, retention, entries: [] };
    doc.retention = retention;
    doc.entries = [...doc.entries.filter((e) => e.uid !== entry.uid), entry];
    this.docs.set(k, doc);
    this.changed(k);
  }

  private changed(k: string): void {
    this.changes.set(k, (this.changes.get(k) ?? 0) + 1);
  }

  /** Records how an execution ended; false when the ledger has no such execution. */
  finish(
    namespace: string,
    policy: string,
    uid: string,
    outcome: ExecutionOutcome,
    endedAt: number,
    ids: Pick<LedgerEntry, 'commandIds' | 'messageId' | 'approver'>,
  ): boolean {
    const doc = this.docs.get(key(namespace, policy));
    const e = doc?.entries.find((x) => x.uid === uid);
    if (!doc || !e) return false;
    if (e.outcome === outcome && e.endedAt === endedAt) return true;
    Object.assign(
      e,
      { outcome, endedAt },
      ids.commandIds?.length ? { commandIds: ids.commandIds } : {},
      ids.messageId ? { messageId: ids.messageId } : {},
      ids.approver ? { approver: ids.approver } : {},
    );
    this.changed(key(namespace, policy));
    this.onChange(namespace, policy, outcome !== 'Succeeded');
    return true;
  }

  /**
   * Records the verdict of the policy's spec.verify on a Succeeded execution (false:
   * ineffective, which the circuit breaker counts as a failure); false when the ledger
   * has no such execution.
   */
  verdict(namespace: string, policy: string, uid: string, verified: boolean): boolean {
    const e = this.docs.get(key(namespace, policy))?.entries.find((x) => x.uid === uid);
    if (!e) return false;
    if (e.verified === verified) return true;
    e.verified = verified;
    this.changed(key(namespace, policy));
    this.onChange(namespace, policy, !verified);
    return true;
  }

  /** When the policy's breaker opened, if it is recorded open (see LedgerDocument.breakerOpenedAt). */
  breakerOpenedAt(namespace: string, policy: string): number | undefined {
    return this.docs.get(key(namespace, policy))?.breakerOpenedAt;
  }

  /**
   * Records the breaker open (at `openedAt`) or, with undefined, closed by a trusted reset;
   * `persist` stores it. True when that changed anything.
   */
  setBreaker(namespace: string, policy: string, retention: LedgerRetention, openedAt: number | undefined): boolean {
    const k = key(namespace, policy);
    const doc = this.docs.get(k);
    if (doc?.breakerOpenedAt === openedAt || (!doc && openedAt === undefined)) return false;
    const d = doc ?? { namespace, policy, retention, entries: [] };
    if (openedAt === undefined) delete d.breakerOpenedAt;
    else d.breakerOpenedAt = openedAt;
    this.docs.set(k, d);
    this.changed(k);
    this.onChange(namespace, policy, true);
    return true;
  }

  /** Drops an intent that provably sent nothing. */
  forget(namespace: string, policy: string, uid: string): boolean {
    const doc = this.docs.get(key(namespace, policy));
    if (!doc?.entries.some((e) => e.uid === uid)) return false;
    doc.entries = doc.entries.filter((e) => e.uid !== uid);
    this.changed(key(namespace, policy));
    this.onChange(namespace, policy, true);
    return true;
  }

  /**
   * Stores the policy's document as memory has it now, after any write already under
   * way. Group commit, per policy and across requests: one write in flight per document,
   * and every caller that asks while it is in flight shares the one write queued behind
   * it (which stores all of their changes, since it reads memory when it starts). With
   * nothing in flight the write starts at once; under a burst a write carries every
   * execution recorded or finished during the one before, instead of one each.
   */
  persist(namespace: string, policy: string): Promise<void> {
    const k = key(namespace, policy);
    const queued = this.queued.get(k);
    // Not started yet: it will read memory, this caller's change included, when it does.
    if (queued) return queued;
    const previous = this.writes.get(k) ?? Promise.resolve();
    const next: Promise<void> = previous
      .catch(() => undefined)
      .then(() => {
        if (this.queued.get(k) === next) this.queued.delete(k);
        return this.write(k);
      });
    this.queued.set(k, next);
    this.writes.set(k, next);
    void next
      .finally(() => {
        if (this.writes.get(k) === next) this.writes.delete(k);
      })
      .catch(() => undefined);
    return next;
  }

  /** Prunes every document and stores those that changed; an emptied one is removed. */
  async sweep(): Promise<void> {
    for (const doc of [...this.docs.values()]) await this.persist(doc.namespace, doc.policy);
  }

  private async write(k: string): Promise<void> {
    const doc = this.docs.get(k);
    if (!doc) return;
    const now = this.clock.now();
    const before = doc.entries;
    const marks = doc.runs?.length;
    doc.entries = prune(doc, now);
    keepRunMarks(
      doc,
      before.filter((e) => !doc.entries.includes(e)),
      now,
    );
    if (doc.entries.length !== before.length || doc.runs?.length !== marks) this.changed(k);
    if (doc.entries.length === 0 && doc.breakerOpenedAt === undefined && !doc.runs?.length) {
      if (doc.resourceVersion)
        await this.storage.remove(doc).catch((error: unknown) => {
          if (!this.storage.isConflict(error)) throw error;
        });
      if (this.docs.get(k) === doc && doc.entries.length === 0 && doc.breakerOpenedAt === undefined && !doc.runs?.length) {
        this.docs.delete(k);
      }
      this.stored.delete(k);
      this.changes.delete(k);
      return;
    }
    for (let attempt = 0; ; attempt++) {
      const version = this.changes.get(k) ?? 0;
      if (doc.resourceVersion && this.stored.get(k) === version) return;
      try {
        // The storage captures the document before its first await (see LedgerStorage.save).
        doc.resourceVersion = await this.storage.save(doc);
        this.stored.set(k, version);
        return;
      } catch (error) {
        if (!this.storage.isConflict(error) || attempt >= 5) throw error;
        // Someone else wrote it (a previous leader finishing its last reconcile): keep both.
        const theirs = await this.storage.get(doc.namespace, doc.policy);
        doc.resourceVersion = theirs?.resourceVersion;
        for (const e of theirs?.entries ?? []) {
          const mine = doc.entries.find((x) => x.uid === e.uid);
          if (!mine) doc.entries.push(e);
          else if (mine.outcome === undefined && e.outcome !== undefined) Object.assign(mine, { outcome: e.outcome, endedAt: e.endedAt });
          if (mine && mine.verified === undefined && e.verified !== undefined) mine.verified = e.verified;
        }
        mergeRunMarks(doc, theirs);
        if (doc.breakerOpenedAt === undefined && theirs?.breakerOpenedAt !== undefined) {
          doc.breakerOpenedAt = theirs.breakerOpenedAt;
        }
        this.changed(k);
      }
    }
  }
}
