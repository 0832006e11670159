/**
 * The audit record of an ended request (src/api/audit/v1.ts), written to the sink the
 * administrator chose (`--audit-sink`, src/cloud/audit-sink.ts) before retention may
 * delete the request: both deletions — ttlAfterFinished (request/reconciler.ts) and a
 * policy's historyLimit (alertpolicy.ts, wired in src/operator.ts) — call
 * `beforeDelete` first, and a write that fails holds the deletion: the request stays, a
 * Warning Event on it says why and what to grant, `remediator_audit_records_total
 * {outcome="failed"}` counts it, and the error sends the key back to the work queue,
 * whose backoff retries it until the sink takes the record.
 *
 * One chain per namespace. Its head (position, digest, request uid) is read back from
 * the sink the first time a namespace is written after this process started (the sink is
 * the source of truth: a restart or a new leader continues where the last writer
 * stopped), then kept in memory; a failed write forgets it, so the next attempt reads the
 * sink again and finds a record whose response was lost. Writes of one namespace are
 * serialized. A request whose record is the head is not written again (a crash between
 * writing and deleting); one re-written later anyway (the head moved on in between)
 * appears twice in an intact chain, and `verifyChain` lists it as a duplicate.
 */
import type { Logger } from 'pino';
import { AUDIT_API_VERSION, AUDIT_KIND, parseRecord, sealRecord, serializeRecord, type AuditRecord } from '../api/audit/v1.js';
import { VERIFIED_CONDITION, type RemediationRequest } from '../api/v1alpha1/index.js';
import type { AuditSink } from '../cloud/audit-sink.js';
import type { EventRecorder, ResourceClient } from '../kube/resources.js';
import type { Metrics } from '../observability/metrics.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import { findCondition } from '../runtime/conditions.js';

/** The record of `rr` without its place in the chain (sealRecord adds it). */
export function auditRecordOf(rr: RemediationRequest, recordedAt: string): Omit<AuditRecord, 'sequence' | 'previousDigest' | 'digest'> {
  const s = rr.status ?? {};
  const e = s.execution;
  const plan = s.plan;
  const approved = findCondition(s.conditions, 'Approved');
  const verified = findCondition(s.conditions, VERIFIED_CONDITION);
  const ssmCommands =
    e?.ssm?.commands ??
    (e?.ssm ? [{ comment: e.ssm.comment, instanceIds: s.targets ?? [], commandId: e.ssm.commandId, requestedAt: e.ssm.requestedAt }] : []);
  return {
    apiVersion: AUDIT_API_VERSION,
    kind: AUDIT_KIND,
    recordedAt,
    request: {
      namespace: rr.metadata?.namespace ?? '',
      name: rr.metadata?.name ?? '',
      uid: rr.metadata?.uid ?? '',
      policy: rr.spec.policyRef.name,
      ...(rr.metadata?.creationTimestamp && { createdAt: String(rr.metadata.creationTimestamp) }),
      ...(rr.spec.requestedBy && { requestedBy: rr.spec.requestedBy }),
    },
    alert: {
      source: rr.spec.alert.source,
      name: rr.spec.alert.name,
      ...(rr.spec.alert.status && { status: rr.spec.alert.status }),
      ...(rr.spec.alert.fingerprint && { fingerprint: rr.spec.alert.fingerprint }),
      ...(rr.spec.alert.startsAt && { startsAt: rr.spec.alert.startsAt }),
      ...(rr.spec.alert.labels && { labels: rr.spec.alert.labels }),
    },
    ...(plan && {
      plan: {
        digest: plan.digest,
        runbook: plan.runbook.name,
        runbookGeneration: plan.runbook.generation,
        policyGeneration: plan.policyGeneration,
        risk: plan.risk,
        region: plan.region,
        ...(plan.roleArn && { roleArn: plan.roleArn }),
        targets: plan.targets,
        ...(plan.ssm && { ssm: { documentName: plan.ssm.documentName, parameters: plan.ssm.parameters } }),
        ...(plan.sns && {
          sns: {
            topicArn: plan.sns.topicArn,
            messageSha256: plan.sns.messageSha256,
            ...(plan.sns.subject && { subject: plan.sns.subject }),
          },
        }),
      },
    }),
    ...(s.approval && {
      approval: {
        decision: s.approval.decision,
        approver: s.approval.approver,
        ...(s.approval.reason && { reason: s.approval.reason }),
        ...(s.approval.planDigest && { planDigest: s.approval.planDigest }),
        ...(approved?.lastTransitionTime && { at: approved.lastTransitionTime }),
      },
    }),
    ...(e && {
      execution: {
        ...(e.dryRun && { dryRun: true }),
        ...(e.ssm && {
          ssm: {
            documentName: e.ssm.documentName,
            intentRecordedAt: e.ssm.intentRecordedAt,
            commands: ssmCommands.map((c) => ({
              instanceIds: c.instanceIds,
              ...(c.commandId && { commandId: c.commandId }),
              ...(c.requestedAt && { requestedAt: c.requestedAt }),
              ...('refused' in c && c.refused && { refused: `${c.refused.reason}: ${c.refused.message}` }),
            })),
            ...(e.ssm.output && { output: { ...e.ssm.output } as Record<string, string> }),
          },
        }),
        ...(e.sns && {
          sns: {
            topicArn: e.sns.topicArn,
            intentRecordedAt: e.sns.intentRecordedAt,
            ...(e.sns.messageId && { messageId: e.sns.messageId }),
            ...(e.sns.publishedAt && { publishedAt: e.sns.publishedAt }),
          },
        }),
      },
    }),
    ...(e?.ssm?.invocations && {
      instances: e.ssm.invocations.map((i) => ({
        instanceId: i.instanceId,
        status: i.status,
        ...(i.responseCode !== undefined && { responseCode: i.responseCode }),
      })),
    }),
    ...(verified && {
      verification: {
        verdict: verified.status === 'True' ? 'Verified' : verified.status === 'False' ? 'Ineffective' : 'Unknown',
        reason: verified.reason,
        message: verified.message,
        at: verified.lastTransitionTime,
      },
    }),
    ...(s.notifications && {
      notifications: s.notifications.map((n) => ({
        phase: n.phase,
        ...(n.messageId && { messageId: n.messageId }),
        ...(n.error && { error: n.error }),
        ...(n.sentAt && { sentAt: n.sentAt }),
      })),
    }),
    outcome: {
      phase: s.phase ?? 'Pending',
      ...(s.reason && { reason: s.reason }),
      ...(s.message && { message: s.message }),
      ...(s.startTime && { startTime: s.startTime }),
      ...(s.completionTime && { completionTime: s.completionTime }),
    },
  };
}

/** The sink refused a record: the request must not be deleted yet. */
export class AuditHeldError extends Error {
  override readonly name = 'AuditHeldError';
}

/** What `beforeDelete` found: deletion may proceed for each of these. */
export type AuditOutcome = 'disabled' | 'written' | 'already_written' | 'gone';

interface Head {
  sequence: number;
  digest: string;
  uid: string;
  timestamp: number;
}

export interface AuditRecorderDeps {
  /** undefined: no sink configured (`--audit-sink=none`); deletion is never held. */
  sink: AuditSink | undefined;
  /** Reads the full request (the cache keeps a compact copy of ended requests; see src/operator.ts). */
  requests: Pick<ResourceClient<RemediationRequest>, 'get'>;
  events: EventRecorder;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
}

/** Requests recently recorded, so a deletion retried after its write is not written again. */
const REMEMBERED = 10_000;

export class AuditRecorder {
  private readonly heads = new Map<string, Head>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly recorded = new Set<string>();

  constructor(private readonly deps: AuditRecorderDeps) {}

  get enabled(): boolean {
    return this.deps.sink !== undefined;
  }

  /**
   * Writes the record of the ended request `namespace/name` (if it is still the one with
   * `uid`) unless it is already in the sink. Throws `AuditHeldError` when the sink did not
   * take it: the caller must not delete the request.
   */
  async beforeDelete(namespace: string, name: string, uid: string): Promise<AuditOutcome> {
    const sink = this.deps.sink;
    if (!sink) return 'disabled';
    if (this.recorded.has(uid)) return 'already_written';
    return this.serialized(namespace, async () => {
      if (this.recorded.has(uid)) return 'already_written';
      const rr = await this.deps.requests.get(namespace, name);
      if (!rr || rr.metadata?.uid !== uid) return 'gone';
      try {
        const head = this.heads.get(namespace) ?? (await this.readHead(sink, namespace));
        if (head?.uid === uid) {
          // Written before a crash (or a lost response): the chain has it already.
          this.remember(uid);
          this.heads.set(namespace, head);
          this.deps.metrics.auditRecords.inc({ namespace, outcome: 'already_written' });
          return 'already_written';
        }
        const now = this.deps.clock.now();
        const record = sealRecord(auditRecordOf(rr, isoNow(this.deps.clock)), head);
        // CloudWatch Logs orders a stream by timestamp, and `last` reads the newest: always
        // after the head (never equal, never before), whatever the clocks did.
        const timestamp = Math.max(now, (head?.timestamp ?? 0) + 1);
        await sink.write(namespace, { sequence: record.sequence, uid, text: serializeRecord(record), timestamp });
        this.heads.set(namespace, { sequence: record.sequence, digest: record.digest, uid, timestamp });
        this.remember(uid);
        this.deps.metrics.auditRecords.inc({ namespace, outcome: 'written' });
        this.deps.logger.info(
          { namespace, request: name, uid, sequence: record.sequence, digest: record.digest, sink: sink.location },
          'audit record written',
        );
        return 'written';
      } catch (error) {
        // Whether the write landed is unknown: the next attempt reads the head from the sink.
        this.heads.delete(namespace);
        this.deps.metrics.auditRecords.inc({ namespace, outcome: 'failed' });
        const why = error instanceof Error ? error.message : String(error);
        const message =
          `could not write the audit record to ${sink.location}: ${why}. The request is kept until it is written ` +
          `(retried with backoff); check that the controller's role may call ${sink.writeAction} there (docs/audit.md)`;
        void this.deps.events.record(rr, 'Warning', 'AuditWriteFailed', message);
        throw new AuditHeldError(message, { cause: error });
      }
    });
  }

  /** The sink's newest record of `namespace`; a record that cannot be read stops the chain (loudly). */
  private async readHead(sink: AuditSink, namespace: string): Promise<Head | undefined> {
    const last = await sink.last(namespace);
    if (!last) return undefined;
    let record: AuditRecord;
    try {
      record = parseRecord(last.text);
    } catch (error) {
      throw new Error(
        `the newest entry at ${last.where} is not an audit record (${(error as Error).message}); ` +
          `run kubectl remediator history -n ${namespace} --verify and remove what does not belong there`,
      );
    }
    return { sequence: record.sequence, digest: record.digest, uid: record.request.uid, timestamp: last.timestamp };
  }

  private remember(uid: string): void {
    this.recorded.add(uid);
    if (this.recorded.size > REMEMBERED) this.recorded.delete(this.recorded.values().next().value as string);
  }

  /** Runs `fn` after every earlier call for `namespace` settled: one writer per chain. */
  private async serialized<T>(namespace: string, fn: () => Promise<T>): Promise<T> {
    const before = this.locks.get(namespace) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(namespace, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(namespace) === tail) this.locks.delete(namespace);
    }
  }
}
