/**
 * Executing (SNS): publish at most once, through the execution engine (engine.ts). The
 * message is rendered again from the same inputs as the plan (status keeps only a
 * preview) and must match the plan's digest. SNS cannot be asked whether it took a
 * message, so a Publish whose answer was lost (or that a stopped controller may have
 * made) is repeated only on a FIFO topic, with the request UID as deduplication id and
 * only within SNS's 5-minute deduplication window counted from the intent; on a standard
 * topic — or after the window — the request fails `PublishUnconfirmed` instead of
 * risking a second message. `attempts` counts the Publish calls made.
 */
import type { AlertPolicy, RemediationRequest, RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import { AwsAccessDeniedError } from '../../cloud/types.js';
import { renderPlan } from '../plan-render.js';
import { TemplateError } from '../template.js';
import type { CloudServices } from '../../cloud/clients.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import { classifyAwsFailure, type ExecutionEngine, FIFO_DEDUP_WINDOW_MS, viewOf } from './engine.js';
import type { Transition, Transitions } from './transition.js';

export class SnsExecution {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
    private readonly engine: ExecutionEngine,
  ) {}

  async step(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    policy: AlertPolicy | undefined,
    cloud: CloudServices,
  ): Promise<Transition> {
    const record = status.execution!.sns!;
    if (record.messageId) return { status };
    const plan = status.plan;
    const runbook = plan ? this.deps.getRunbook(plan.runbook.name) : undefined;
    if (!plan || !policy || !runbook) {
      return this.t.fail(
        rr,
        status,
        'PlanChanged',
        'the policy or runbook is gone, so the approved message cannot be rendered again; nothing was published',
      );
    }
    let rendered: ReturnType<typeof renderPlan>;
    try {
      rendered = renderPlan({ rr, policy, runbook, risk: plan.risk, targets: plan.targets, region: plan.region, status });
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      return this.t.fail(rr, status, 'InvalidParameter', `${error.message}; nothing was published`);
    }
    if (rendered.plan.digest !== plan.digest || !rendered.sns) {
      return this.t.fail(
        rr,
        status,
        'PlanChanged',
        `the message rendered now differs from the approved plan ${plan.digest}; nothing was published`,
      );
    }
    const { message, attributes, messageGroupId } = rendered.sns;
    const uid = rr.metadata?.uid ?? '';
    const fifo = record.topicArn.endsWith('.fifo');
    const decision = await this.engine.execute<string>(viewOf(rr), {
      kind: 'sns-publish',
      id: uid,
      owner: uid,
      perform: async () =>
        (
          await cloud.publisher.publish({
            topicArn: record.topicArn,
            subject: record.subject,
            message,
            attributes,
            messageGroupId,
            deduplicationId: uid,
          })
        ).messageId,
      ...(fifo && { dedupWindowMs: FIFO_DEDUP_WINDOW_MS, earliestAttempt: Date.parse(record.intentRecordedAt) }),
      // Publish denied: nothing was published, and the role may be fixed (retried with backoff).
      classify: (error) => (error instanceof AwsAccessDeniedError ? 'retry' : classifyAwsFailure(error)),
    });
    const attempts = (record.attempts ?? 0) + this.engine.attempts(uid, uid);
    if (decision.action === 'refused') {
      record.attempts = attempts;
      return this.t.fail(rr, status, 'PublishRejected', `SNS refused the message: ${decision.error.message}; nothing was published`);
    }
    if (decision.action === 'unknown' || decision.action === 'wait' || decision.action === 'withheld') {
      record.attempts = Math.max(attempts, 1);
      const why = fifo ? 'its deduplication window (5 minutes) has passed' : 'the topic is not FIFO, so SNS would not drop a second copy';
      this.t.condition(rr, status, 'Executed', 'Unknown', 'PublishUnconfirmed', `a Publish to ${record.topicArn} may have been made`);
      return this.t.fail(
        rr,
        status,
        'PublishUnconfirmed',
        `a Publish to ${record.topicArn} was made but its answer was lost (or the controller stopped before recording it); SNS cannot be asked whether it took the message and ${why}, so it is not published again: check the topic's subscribers`,
      );
    }
    const messageId = decision.result;
    record.messageId = messageId;
    record.publishedAt = this.t.now();
    record.attempts = Math.max(attempts, 1);
    this.t.condition(rr, status, 'Executed', 'True', 'Published', `SNS message ${messageId}`);
    return this.t.enter(rr, status, 'Succeeded', 'MessagePublished', `published SNS message ${messageId} to ${record.topicArn}`);
  }
}
