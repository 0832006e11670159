/**
 * Executing (SNS): publish once. The message is rendered again from the same inputs as
 * the plan (status keeps only a preview) and must match the plan's digest; FIFO topics
 * deduplicate a retry after a lost response by the request UID.
 */
import type { AlertPolicy, RemediationRequest, RemediationRequestStatus } from '../../api/v1alpha1/index.js';
import { isPermanentAwsError } from '../../cloud/errors.js';
import { renderPlan } from '../plan.js';
import { TemplateError } from '../template.js';
import type { CloudClients, RemediationRequestReconcilerDeps } from './deps.js';
import type { Transition, Transitions } from './transition.js';

export class SnsExecution {
  constructor(
    private readonly deps: RemediationRequestReconcilerDeps,
    private readonly t: Transitions,
  ) {}

  async step(
    rr: RemediationRequest,
    status: RemediationRequestStatus,
    policy: AlertPolicy | undefined,
    cloud: CloudClients,
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
    let messageId: string;
    try {
      ({ messageId } = await cloud.publisher.publish({
        topicArn: record.topicArn,
        subject: record.subject,
        message,
        attributes,
        messageGroupId,
        deduplicationId: rr.metadata?.uid,
      }));
    } catch (error) {
      if (isPermanentAwsError(error))
        return this.t.fail(rr, status, 'PublishRejected', `SNS refused the message: ${(error as Error).message}; nothing was published`);
      throw error;
    }
    record.messageId = messageId;
    record.publishedAt = this.t.now();
    record.attempts = (record.attempts ?? 0) + 1;
    this.t.condition(rr, status, 'Executed', 'True', 'Published', `SNS message ${messageId}`);
    return this.t.enter(rr, status, 'Succeeded', 'MessagePublished', `published SNS message ${messageId} to ${record.topicArn}`);
  }
}
