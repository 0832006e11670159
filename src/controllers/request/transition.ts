/**
 * The status bookkeeping every phase handler shares: a transition (the status to write,
 * its Event, when to look again), entering a phase, and setting a condition. Nothing
 * here touches memory outside the status being built: side tables change only after
 * the write succeeded (see reconciler.ts).
 */
import { END_PHASES, type Phase, type RemediationRequest, type RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import type { EventType } from '../../kube/resources.js';
import { isoNow, type Clock } from '../../runtime/clock.js';
import { setCondition, type Condition } from '../../runtime/conditions.js';
import { requestReadiness } from '../kstatus.js';

/** A transition decided by one reconcile step. */
export interface Transition {
  status: RemediationRequestStatus;
  event?: { type: EventType; reason: string; message: string };
  requeueAfterMs?: number;
  /** Runs before the status write (the execution ledger stores the intent); a failure fails the write. */
  beforeWrite?: () => Promise<void>;
  /** Add the execution finalizer before the status write. */
  addFinalizer?: boolean;
  /** Runs once the status write succeeded. */
  afterWrite?: () => void;
  /**
   * A command id learnt from SSM (for the command with this comment) that must not be
   * lost to a write conflict: on 409 the write is retried on a fresh read of the request
   * instead of giving up.
   */
  mustPersist?: { comment: string; commandId: string; requestedAt: string; maxConcurrency?: string; maxErrors?: string };
}

export type ConditionType = 'Enriched' | 'Approved' | 'Executed' | 'CloudAccess' | 'Ready' | 'Verified';

export class Transitions {
  constructor(private readonly clock: Clock) {}

  now(): string {
    return isoNow(this.clock);
  }

  /** A copy of the request's status to build the next one on. */
  base(rr: RemediationRequest): RemediationRequestStatus {
    return structuredClone(rr.status ?? {});
  }

  /** Sets a condition on `status`, stamped with the request's generation. */
  condition(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    type: ConditionType,
    value: Condition['status'],
    reason: string,
    message: string,
  ): void {
    status.conditions = setCondition(
      status.conditions,
      { type, status: value, reason, message, observedGeneration: rr.metadata?.generation },
      this.now(),
    );
  }

  /**
   * Enter `phase` with a reason and message, and the `Ready` condition tools such as
   * `kubectl wait --for=condition=Ready` and kstatus read: True once the request ended
   * as wanted or deliberately, False once it failed or expired, Unknown while it is in
   * progress (kstatus.ts derives Reconciling and Stalled next to it at the write).
   */
  enter(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    phase: Phase,
    reason: string,
    message: string,
    eventType: EventType = 'Normal',
  ): Transition {
    status.phase = phase;
    status.reason = reason;
    status.message = message;
    status.observedGeneration = rr.metadata?.generation;
    if (END_PHASES.has(phase)) {
      status.completionTime ??= this.now();
      this.condition(rr, status, 'Ready', requestReadiness(phase), reason, message);
    } else {
      this.condition(rr, status, 'Ready', 'Unknown', reason, message);
    }
    return { status, event: { type: eventType, reason, message: `${phase}: ${message}` } };
  }

  /** Ends the request Failed: nothing more will run. */
  fail(rr: RemediationRequest, status: RemediationRequestStatus, reason: string, message: string): Transition {
    return this.enter(rr, status, 'Failed', reason, message, 'Warning');
  }
}
