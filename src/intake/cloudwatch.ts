/**
 * A CloudWatch alarm state change (the `Message` of a verified SNS notification) into an
 * intake alert with source `cloudwatch`.
 *
 * - `ALARM` is firing, `OK` is resolved; `INSUFFICIENT_DATA` says nothing about the
 *   problem and is acknowledged without effect.
 * - Labels: `alertname` (the alarm name), every metric dimension by its own name
 *   (`InstanceId`, `AutoScalingGroupName`, ... — what `targets.fromDimensions` reads),
 *   and `aws_account_id`, `aws_region`, `metric_namespace`, `metric_name` when known.
 * - The fingerprint is a hash of the alarm ARN (the alarm's identity); the occurrence is
 *   its `StateChangeTime`, so SNS's at-least-once re-deliveries of one transition dedupe,
 *   and the next transition into ALARM is a new occurrence.
 * - Provenance: the account and region come from the alarm ARN (the one fact CloudWatch
 *   always sets); `AWSAccountId` must name the same account, and so must the ARN of the
 *   SNS topic the signed notification came through. A missing, malformed or disagreeing
 *   value refuses the message (422): a runbook's account and region are compared with
 *   these, so an unknown location must never reach the controller as "no location".
 */
import { canonicalTime, sha256Hex, stringMap, type IntakeAlert } from './alert.js';
import { IntakeError } from './errors.js';
import { checkers, validate, type CloudWatchAlarm } from './schemas.js';

export type CloudWatchResult = { kind: 'alert'; alert: IntakeAlert } | { kind: 'ignored'; reason: string };

/** `arn:<partition>:cloudwatch:<region>:<12-digit account>:alarm:<name>` — region and account exactly as AWS writes them. */
const ALARM_ARN = /^arn:(aws[a-z-]*):cloudwatch:([a-z]{2}(?:-[a-z]+)+-[0-9]+):([0-9]{12}):alarm:(.+)$/;
/** `arn:<partition>:sns:<region>:<12-digit account>:<topic>`. */
const TOPIC_ARN = /^arn:(aws[a-z-]*):sns:([a-z]{2}(?:-[a-z]+)+-[0-9]+):([0-9]{12}):[A-Za-z0-9_-]{1,256}(?:\.fifo)?$/;

export interface AlarmProvenance {
  partition: string;
  region: string;
  account: string;
}

/**
 * Where an alarm comes from, from its ARN, held against `AWSAccountId` and the topic it
 * was delivered through. Throws IntakeError 422 naming the field at the first missing,
 * malformed or disagreeing value.
 */
export function alarmProvenance(alarmArn: string, awsAccountId: string | undefined, topicArn: string): AlarmProvenance {
  const arn = ALARM_ARN.exec(alarmArn);
  if (!arn)
    throw new IntakeError(
      422,
      `invalid CloudWatch alarm: Message.AlarmArn ${JSON.stringify(alarmArn.slice(0, 256))} is not an alarm ARN ` +
        '(arn:aws:cloudwatch:<region>:<12-digit account>:alarm:<name>, region in lower case); its account and region cannot be known',
    );
  const [, partition, region, account] = arn as unknown as [string, string, string, string];
  if (awsAccountId === undefined || awsAccountId === null || !/^[0-9]{12}$/.test(awsAccountId))
    throw new IntakeError(
      422,
      `invalid CloudWatch alarm: Message.AWSAccountId ${JSON.stringify(awsAccountId ?? null)} is not a 12-digit account; refusing an alarm whose account cannot be checked`,
    );
  if (awsAccountId !== account)
    throw new IntakeError(
      422,
      `invalid CloudWatch alarm: Message.AWSAccountId ${awsAccountId} disagrees with the account ${account} of its AlarmArn; refusing it`,
    );
  const topic = TOPIC_ARN.exec(topicArn);
  if (!topic)
    throw new IntakeError(
      422,
      `TopicArn ${JSON.stringify(topicArn.slice(0, 300))} is not an SNS topic ARN; cannot check the alarm's account`,
    );
  if (topic[3] !== account || topic[1] !== partition)
    throw new IntakeError(
      422,
      `the alarm ${alarmArn.slice(0, 256)} belongs to account ${account}, but it came through topic ${topicArn.slice(0, 300)} of account ${topic[3]}; ` +
        "an alarm is accepted only through a topic in its own account (subscribe this endpoint to a topic in the alarm's account)",
    );
  return { partition, region, account };
}

/** The alert of a verified SNS notification's CloudWatch alarm; `topicArn` is the notification's (signed) TopicArn. */
export function parseCloudWatchAlarm(message: string, topicArn: string): CloudWatchResult {
  let body: unknown;
  try {
    body = JSON.parse(message);
  } catch {
    throw new IntakeError(
      422,
      'the SNS Message is not JSON: this endpoint accepts CloudWatch alarm notifications only (subscribe it to the topic your alarm actions publish to)',
    );
  }
  const alarm: CloudWatchAlarm = validate(checkers.cloudwatch, body, 'CloudWatch alarm', 'Message');
  let status: IntakeAlert['status'];
  switch (alarm.NewStateValue) {
    case 'ALARM':
      status = 'firing';
      break;
    case 'OK':
      status = 'resolved';
      break;
    case 'INSUFFICIENT_DATA':
      return { kind: 'ignored', reason: `alarm ${alarm.AlarmName} entered INSUFFICIENT_DATA, which neither fires nor resolves anything` };
    default:
      throw new IntakeError(
        422,
        `invalid CloudWatch alarm: Message.NewStateValue must be "ALARM", "OK" or "INSUFFICIENT_DATA", got ${JSON.stringify(alarm.NewStateValue.slice(0, 64))}`,
      );
  }
  const changed = canonicalTime(alarm.StateChangeTime);
  if (!changed)
    throw new IntakeError(
      422,
      `invalid CloudWatch alarm: Message.StateChangeTime ${JSON.stringify(alarm.StateChangeTime)} is not a timestamp`,
    );
  const { account, region } = alarmProvenance(alarm.AlarmArn, alarm.AWSAccountId ?? undefined, topicArn);

  const labels: Array<[string, string]> = [];
  for (const d of alarm.Trigger?.Dimensions ?? []) labels.push([d.name, d.value]);
  labels.push(['aws_account_id', account]);
  labels.push(['aws_region', region]);
  if (alarm.Trigger?.Namespace) labels.push(['metric_namespace', alarm.Trigger.Namespace]);
  if (alarm.Trigger?.MetricName) labels.push(['metric_name', alarm.Trigger.MetricName]);
  // Last, so a dimension that happens to be called `alertname` cannot rename the alert.
  labels.push(['alertname', alarm.AlarmName]);

  const annotations: Array<[string, string]> = [['alarm_arn', alarm.AlarmArn]];
  if (alarm.AlarmDescription) annotations.push(['description', alarm.AlarmDescription]);
  if (alarm.NewStateReason) annotations.push(['reason', alarm.NewStateReason]);

  return {
    kind: 'alert',
    alert: {
      source: 'cloudwatch',
      name: alarm.AlarmName,
      labels: stringMap(labels),
      annotations: stringMap(annotations),
      fingerprint: sha256Hex(alarm.AlarmArn).slice(0, 16),
      startsAt: changed,
      occurrence: changed,
      status,
      // Always both, checked above: a runbook's account and region are compared with them
      // before anything runs, and the controller refuses a cloudwatch alert without them.
      account,
      region,
    },
  };
}
