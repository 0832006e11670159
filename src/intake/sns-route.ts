/**
 * The SNS route (`POST /v1/alerts/sns`): CloudWatch alarms delivered by SNS, and the
 * subscription flow around them. The route is open to anyone, so trust comes only from
 * the message: it reads the body under a short timeout, checks the envelope against its
 * headers, verifies the signature and the topic allowlist (sns.ts), and only then takes
 * one of its own processing slots (beyond them 503, which SNS retries): a stranger
 * trickling a body holds a connection, never a slot. A SubscriptionConfirmation is
 * confirmed by visiting its SubscribeURL (only an SNS host of AWS, by default); an
 * UnsubscribeConfirmation is logged; a Notification becomes an alert (cloudwatch.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { parseCloudWatchAlarm } from './cloudwatch.js';
import { IntakeError } from './errors.js';
import { checkContentType, parseJson, readBody } from './http.js';
import type { AlertProcessor } from './processor.js';
import { accepted, type Reply } from './routes.js';
import { checkers, LIMITS, validate, type SnsEnvelope } from './schemas.js';
import { checkSubscribeUrl, isSnsMessageType, type ConfirmUrlPolicy, type Fetch, type SnsVerifier } from './sns.js';

export interface SnsRouteOptions {
  verifier: SnsVerifier;
  processor: AlertProcessor;
  log: Logger;
  /** How long to wait for the body: SNS posts a small one at once. */
  bodyTimeoutMs: number;
  /** Which SubscribeURLs may be visited. */
  confirmUrlPolicy: ConfirmUrlPolicy;
  /** Used to visit a SubscribeURL. */
  fetch: Fetch;
}

export class SnsRoute {
  constructor(private readonly opts: SnsRouteOptions) {}

  /** `takeSlot` is called once the message is verified; it throws when the SNS budget is spent. */
  async handle(req: IncomingMessage, res: ServerResponse, namespace: string | undefined, takeSlot: () => void): Promise<Reply> {
    const env = await this.readVerified(req, res);
    takeSlot();
    const log = { topic: env.TopicArn, messageId: env.MessageId, type: env.Type };
    switch (env.Type) {
      case 'SubscriptionConfirmation':
        return this.confirmSubscription(env, log);
      case 'UnsubscribeConfirmation':
        this.opts.log.warn(log, 'the SNS topic unsubscribed this endpoint; CloudWatch alarms from it will no longer arrive');
        return { status: 200, outcome: 'ok', body: { acknowledged: env.Type } };
      case 'Notification': {
        const parsed = parseCloudWatchAlarm(env.Message, env.TopicArn);
        if (parsed.kind === 'ignored') {
          this.opts.log.debug({ ...log, reason: parsed.reason }, 'SNS notification ignored');
          return { status: 200, outcome: 'ok', body: { alerts: 0, ignored: parsed.reason } };
        }
        return accepted(await this.opts.processor.process([parsed.alert], namespace));
      }
    }
    throw new IntakeError(400, 'unknown SNS message Type');
  }

  /** The message, once its envelope agrees with its headers and its signature and topic are verified. */
  private async readVerified(req: IncomingMessage, res: ServerResponse): Promise<SnsEnvelope> {
    checkContentType(req, true);
    // A short body timeout: this route is open to anyone, and a slot held by a sender
    // trickling its body is a slot SNS cannot use.
    const body = parseJson(await readBody(req, res, LIMITS.maxBodyBytes, this.opts.bodyTimeoutMs));
    const env = validate(checkers.sns, body, 'SNS message');
    if (!isSnsMessageType(env.Type)) {
      throw new IntakeError(
        400,
        `unknown SNS message Type ${JSON.stringify(env.Type)}: expected Notification, SubscriptionConfirmation or UnsubscribeConfirmation`,
      );
    }
    const headerType = req.headers['x-amz-sns-message-type'];
    if (headerType !== undefined && headerType !== env.Type)
      throw new IntakeError(
        400,
        `x-amz-sns-message-type header (${headerType.slice(0, 40)}) disagrees with the message Type (${env.Type})`,
      );
    const headerTopic = req.headers['x-amz-sns-topic-arn'];
    if (headerTopic !== undefined && headerTopic !== env.TopicArn)
      throw new IntakeError(400, 'x-amz-sns-topic-arn header disagrees with the message TopicArn');
    await this.opts.verifier.verify(env);
    return env;
  }

  /** Visits the SubscribeURL of a verified confirmation (only where the policy allows), without following redirects. */
  private async confirmSubscription(env: SnsEnvelope, log: Record<string, unknown>): Promise<Reply> {
    const confirmUrl = checkSubscribeUrl(env.SubscribeURL, env.TopicArn, this.opts.confirmUrlPolicy);
    let res: Response;
    try {
      res = await this.opts.fetch(confirmUrl.href, { signal: AbortSignal.timeout(10_000), redirect: 'error' });
      await res.body?.cancel();
    } catch (error) {
      this.opts.log.warn({ ...log, err: (error as Error).message }, 'could not confirm the SNS subscription');
      throw new IntakeError(
        502,
        `confirming the SNS subscription failed: ${(error as Error).message}; confirm it in the SNS console or let SNS resend the confirmation`,
        'error',
      );
    }
    if (!res.ok) {
      this.opts.log.warn({ ...log, status: res.status }, 'SNS refused the subscription confirmation');
      throw new IntakeError(502, `confirming the SNS subscription failed: SNS answered HTTP ${res.status}`, 'error');
    }
    this.opts.log.info(log, 'confirmed SNS subscription');
    return { status: 200, outcome: 'ok', body: { confirmed: env.TopicArn } };
  }
}
