/**
 * One remediation per instance at a time, across policies and namespaces. The lock is
 * not a separate record: it is the execution ledger's entry of a running execution
 * (ledger.ts). An intent is recorded there — targets, request, uid — before anything is
 * sent, and stays without an outcome until the execution ended; so "instance X is busy"
 * is "some unfinished ledger entry other than mine names X". The ledger is stored before
 * the request says Executing and loaded again before any reconcile after a restart or a
 * leader change, so the lock survives both, with no second write to keep in step.
 *
 * The check runs where the intent is recorded (intent.ts), with no await between the
 * check and the record, so two requests cannot both take one instance: the second sees
 * the first's entry. A busy instance makes the request wait (it stays Approved and looks
 * again; its approval timeout keeps counting) or be skipped, as the policy's
 * `safety.whenInstanceBusy` says.
 *
 * An entry whose request has ended holds nothing: an ended request sends nothing more,
 * and one that ended without the execution finalizer (its intent recorded, its Executing
 * write lost, then cancelled or expired) is never settled, so its entry would otherwise
 * keep no outcome. An entry whose request no longer exists holds nothing: an execution that sent
 * anything keeps its request (the execution finalizer) until its outcome is in the
 * ledger, so a request that is gone either ended or never sent — e.g. a crash between
 * the ledger write and the finalizer, which would otherwise hold its instances for the
 * ledger's seven-day retention of unfinished entries.
 *
 * Limits: the lock is per controller. Two controllers (a namespaced install per team)
 * do not see each other's ledgers; docs/rollouts.md says so.
 */
import type { AlertPolicy } from '../api/v1alpha1/index.js';
import type { LedgerEntry } from '../api/ledger/v1.js';

export interface InstanceHolder {
  namespace: string;
  policy: string;
  request: string;
  uid: string;
  /** When its intent was recorded (ms). */
  since: number;
}

/** A ledger document as far as locks are concerned. */
export interface LockSource {
  namespace: string;
  policy: string;
  entries: readonly LedgerEntry[];
}

/** Whether the request of an unfinished entry still exists and has not ended (from the request cache). */
export type RequestExists = (namespace: string, request: string, uid: string) => boolean;

/** The instances of `instanceIds` that another running execution holds, and who holds them. */
export function instanceHolders(
  sources: Iterable<LockSource>,
  instanceIds: readonly string[],
  self: string,
  exists: RequestExists,
): Map<string, InstanceHolder> {
  const wanted = new Set(instanceIds);
  const out = new Map<string, InstanceHolder>();
  for (const doc of sources) {
    for (const e of doc.entries) {
      if (e.outcome !== undefined || e.uid === self) continue;
      const mine = e.targets.filter((t) => wanted.has(t) && !out.has(t));
      if (mine.length === 0 || !exists(doc.namespace, e.request, e.uid)) continue;
      for (const t of mine) out.set(t, { namespace: doc.namespace, policy: doc.policy, request: e.request, uid: e.uid, since: e.at });
    }
  }
  return out;
}

export interface InstanceBusy {
  /** Wait: stay Approved and look again; Skip: end Skipped. */
  action: 'Wait' | 'Skip';
  reason: 'InstanceBusy';
  message: string;
}

/** What the policy does about busy instances; undefined when none of its targets is held. */
export function instanceBusyBlock(policy: AlertPolicy, holders: ReadonlyMap<string, InstanceHolder>): InstanceBusy | undefined {
  if (holders.size === 0) return undefined;
  const byHolder = new Map<string, string[]>();
  for (const [id, h] of holders) {
    const who = `${h.namespace}/${h.request} (policy ${h.policy})`;
    byHolder.set(who, [...(byHolder.get(who) ?? []), id]);
  }
  const parts = [...byHolder].slice(0, 5).map(([who, ids]) => `${ids.length > 5 ? `${ids.length} instances` : ids.join(', ')} by ${who}`);
  const more = byHolder.size > 5 ? `; and ${byHolder.size - 5} more requests` : '';
  const action = policy.spec.safety?.whenInstanceBusy ?? 'Wait';
  const then = action === 'Wait' ? 'waiting until they are free' : 'skipped (safety.whenInstanceBusy: Skip)';
  return { action, reason: 'InstanceBusy', message: `instances are being remediated: ${parts.join('; ')}${more}; ${then}` };
}
