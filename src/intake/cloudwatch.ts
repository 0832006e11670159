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
 */
import { canonicalTime, sha256Hex, stringMap, type IntakeAlert } from './alert.js';
import { IntakeError } from './errors.js';
import { checkers, validate, type CloudWatchAlarm } from './schemas.js';

export type CloudWatchResult = { kind: 'alert'; alert: IntakeAlert } | { kind: 'ignored'; reason: string };

export function parseCloudWatchAlarm(message: string): CloudWatchResult {
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
  if (!alarm.AlarmArn.startsWith('arn:'))
    throw new IntakeError(422, `invalid CloudWatch alarm: Message.AlarmArn ${JSON.stringify(alarm.AlarmArn.slice(0, 256))} is not an ARN`);

  // arn:partition:cloudwatch:region:account:alarm:name
  const arn = alarm.AlarmArn.split(':');
  const labels: Array<[string, string]> = [];
  for (const d of alarm.Trigger?.Dimensions ?? []) labels.push([d.name, d.value]);
  const account = alarm.AWSAccountId ?? arn[4];
  if (account) labels.push(['aws_account_id', account]);
  if (arn[3]) labels.push(['aws_region', arn[3]]);
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
      // Only well-formed values: the request's schema refuses anything else, and a runbook's
      // account and region are compared with them before anything runs.
      ...(account && /^[0-9]{12}$/.test(account) && { account }),
      ...(arn[3] && /^[a-z]{2}(-[a-z]+)+-[0-9]+$/.test(arn[3]) && { region: arn[3] }),
    },
  };
}
