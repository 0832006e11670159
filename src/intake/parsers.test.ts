import { parseAlertmanager } from './alertmanager.js';
import { alarmProvenance, parseCloudWatchAlarm } from './cloudwatch.js';

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:alarms';
const parseCW = (message: string, topic = TOPIC) => parseCloudWatchAlarm(message, topic);
import { IntakeError } from './errors.js';
import { parseGeneric } from './generic.js';
import { jsonPath } from './schemas.js';

/** A webhook payload exactly as Alertmanager v0.27 sends it (notify/webhook, version 4). */
function alertmanagerPayload() {
  return {
    receiver: 'remediator',
    status: 'firing',
    alerts: [
      {
        status: 'firing',
        labels: {
          alertname: 'NginxDown',
          instance: '10.0.1.12:9113',
          instance_id: 'i-0123456789abcdef0',
          job: 'nginx',
          severity: 'critical',
        },
        annotations: { summary: 'nginx is down on 10.0.1.12', runbook_url: 'https://runbooks.example/nginx' },
        startsAt: '2025-03-01T10:00:00.123456789Z',
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://prometheus:9090/graph?g0.expr=nginx_up+%3D%3D+0&g0.tab=1',
        fingerprint: 'c4a2d3e1f5b60718',
      },
    ],
    groupLabels: { alertname: 'NginxDown' },
    commonLabels: { alertname: 'NginxDown', job: 'nginx', severity: 'critical' },
    commonAnnotations: { summary: 'nginx is down on 10.0.1.12' },
    externalURL: 'http://alertmanager:9093',
    version: '4',
    groupKey: '{}:{alertname="NginxDown"}',
    truncatedAlerts: 0,
  };
}

function refusal(f: () => unknown): IntakeError {
  try {
    f();
  } catch (error) {
    if (error instanceof IntakeError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('Alertmanager webhook v4', () => {
  test('an Alertmanager payload becomes one alert per entry', () => {
    const [a, ...rest] = parseAlertmanager(alertmanagerPayload(), 500);
    expect(rest).toEqual([]);
    expect(a).toEqual({
      source: 'alertmanager',
      name: 'NginxDown',
      labels: alertmanagerPayload().alerts[0]!.labels,
      annotations: alertmanagerPayload().alerts[0]!.annotations,
      fingerprint: 'c4a2d3e1f5b60718',
      startsAt: '2025-03-01T10:00:00.123Z',
      occurrence: '2025-03-01T10:00:00.123Z',
      status: 'firing',
      generatorURL: 'http://prometheus:9090/graph?g0.expr=nginx_up+%3D%3D+0&g0.tab=1',
    });
  });

  test('unknown fields from a newer Alertmanager are tolerated', () => {
    const p = { ...alertmanagerPayload(), somethingNew: { x: 1 } };
    expect(parseAlertmanager(p, 500)).toHaveLength(1);
  });

  test('a missing fingerprint is computed from the labels', () => {
    const p = alertmanagerPayload();
    delete (p.alerts[0] as { fingerprint?: string }).fingerprint;
    expect(parseAlertmanager(p, 500)[0]!.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  test.each<[string, (p: ReturnType<typeof alertmanagerPayload>) => unknown, RegExp]>([
    ['wrong version', (p) => ({ ...p, version: '3' }), /version "3"/],
    ['no alerts field', ({ alerts: _, ...p }) => p, /alerts: required field is missing/],
    ['alerts not an array', (p) => ({ ...p, alerts: {} }), /alerts: expected array/],
    [
      'label value a number',
      (p) => ({ ...p, alerts: [{ ...p.alerts[0], labels: { alertname: 'x', port: 80 } }] }),
      /alerts\[0\]\.labels\.port: expected string/,
    ],
    ['bad status', (p) => ({ ...p, status: 'FIRING' }), /status: must be one of "firing", "resolved"/],
    ['no alertname', (p) => ({ ...p, alerts: [{ ...p.alerts[0], labels: { job: 'x' } }] }), /alertname is missing/],
    ['bad startsAt', (p) => ({ ...p, alerts: [{ ...p.alerts[0], startsAt: 'yesterday' }] }), /startsAt "yesterday" is not an RFC 3339/],
    ['truncatedAlerts negative', (p) => ({ ...p, truncatedAlerts: -1 }), /truncatedAlerts/],
    ['empty label name', (p) => ({ ...p, alerts: [{ ...p.alerts[0], labels: { alertname: 'x', '': 'y' } }] }), /unknown field/],
    ['not an object', () => [1, 2], /expected object/],
    ['null', () => null, /expected object/],
  ])('%s → 422 naming the problem', (_, mutate, message) => {
    const e = refusal(() => parseAlertmanager(mutate(alertmanagerPayload()), 500));
    expect(e.status).toBe(422);
    expect(e.message).toMatch(message);
  });

  test('too many alerts → 413 telling how to fix it', () => {
    const p = alertmanagerPayload();
    const e = refusal(() => parseAlertmanager({ ...p, alerts: Array.from({ length: 3 }, () => p.alerts[0]) }, 2));
    expect(e.status).toBe(413);
    expect(e.message).toMatch(/max_alerts/);
  });
});

describe('generic alert', () => {
  const now = Date.parse('2025-03-01T10:30:00Z');

  test('defaults: firing, alertname label from name, fingerprint from labels, occurrence from the dedup window', () => {
    const a = parseGeneric({ name: 'DiskFull', labels: { instance_id: 'i-0123456789abcdef0' } }, now, 3_600_000);
    expect(a).toMatchObject({
      source: 'generic',
      name: 'DiskFull',
      status: 'firing',
      labels: { instance_id: 'i-0123456789abcdef0', alertname: 'DiskFull' },
      occurrence: '2025-03-01T10:00:00.000Z',
      startsAt: '2025-03-01T10:30:00.000Z',
    });
    expect(a.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  test('startsAt and fingerprint are used when given', () => {
    const a = parseGeneric({ name: 'X', fingerprint: 'fp-1', startsAt: '2025-03-01T09:00:00Z', status: 'resolved' }, now, 3_600_000);
    expect(a).toMatchObject({ fingerprint: 'fp-1', occurrence: '2025-03-01T09:00:00.000Z', status: 'resolved' });
  });

  test('a __proto__ label stays an ordinary label', () => {
    const a = parseGeneric(JSON.parse('{"name":"X","labels":{"__proto__":"p","a":"b"}}'), now, 3_600_000);
    expect(Object.getPrototypeOf(a.labels)).toBe(Object.prototype);
    expect(Object.hasOwn(a.labels, '__proto__')).toBe(true);
    expect(a.labels.a).toBe('b');
  });

  test.each<[unknown, RegExp]>([
    [{}, /name: required field is missing/],
    [{ name: '' }, /name: expected string length greater or equal to 1/],
    [{ name: 'x'.repeat(257) }, /name: expected string length less or equal to 256/],
    [{ name: 'X', lables: {} }, /lables: unknown field/],
    [{ name: 'X', labels: [] }, /labels: expected object/],
    [{ name: 'X', labels: { a: null } }, /labels\.a: expected string/],
    [{ name: 'X', status: 'ok' }, /status: must be one of/],
    [{ name: 'X', startsAt: 'now' }, /startsAt "now" is not an RFC 3339/],
    [{ name: 'X', fingerprint: 'f'.repeat(129) }, /fingerprint/],
    [{ name: 7 }, /name: expected string/],
    ['X', /expected object/],
  ])('%j → 422', (body, message) => {
    const e = refusal(() => parseGeneric(body, now, 3_600_000));
    expect(e.status).toBe(422);
    expect(e.message).toMatch(message);
  });
});

describe('CloudWatch alarm', () => {
  const alarm = (over: Record<string, unknown> = {}) =>
    JSON.stringify({
      AlarmName: 'cpu-high-web-1',
      AlarmDescription: 'CPU above 90% on web-1',
      AWSAccountId: '123456789012',
      AlarmConfigurationUpdatedTimestamp: '2025-03-01T09:00:00.000+0000',
      NewStateValue: 'ALARM',
      NewStateReason: 'Threshold Crossed: 1 datapoint [97.5] was greater than the threshold (90.0).',
      StateChangeTime: '2025-03-01T10:00:00.000+0000',
      Region: 'US East (N. Virginia)',
      AlarmArn: 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:cpu-high-web-1',
      OldStateValue: 'OK',
      OKActions: [],
      AlarmActions: ['arn:aws:sns:us-east-1:123456789012:alarms'],
      InsufficientDataActions: [],
      Trigger: {
        MetricName: 'CPUUtilization',
        Namespace: 'AWS/EC2',
        StatisticType: 'Statistic',
        Statistic: 'AVERAGE',
        Unit: null,
        Dimensions: [{ value: 'i-0123456789abcdef0', name: 'InstanceId' }],
        Period: 300,
        EvaluationPeriods: 1,
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: 90.0,
        TreatMissingData: 'missing',
        EvaluateLowSampleCountPercentile: '',
      },
      ...over,
    });

  test('ALARM is a firing alert labelled with the alarm name and its dimensions', () => {
    const r = parseCW(alarm());
    expect(r.kind).toBe('alert');
    if (r.kind !== 'alert') return;
    expect(r.alert).toMatchObject({
      source: 'cloudwatch',
      name: 'cpu-high-web-1',
      status: 'firing',
      startsAt: '2025-03-01T10:00:00.000Z',
      occurrence: '2025-03-01T10:00:00.000Z',
      labels: {
        alertname: 'cpu-high-web-1',
        InstanceId: 'i-0123456789abcdef0',
        aws_account_id: '123456789012',
        aws_region: 'us-east-1',
        metric_namespace: 'AWS/EC2',
        metric_name: 'CPUUtilization',
      },
      annotations: { alarm_arn: 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:cpu-high-web-1', description: 'CPU above 90% on web-1' },
    });
    expect(r.alert.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  test('OK resolves the same alert (same fingerprint); INSUFFICIENT_DATA is ignored', () => {
    const firing = parseCW(alarm());
    const ok = parseCW(alarm({ NewStateValue: 'OK', OldStateValue: 'ALARM', StateChangeTime: '2025-03-01T10:05:00.000+0000' }));
    expect(ok.kind === 'alert' && ok.alert.status).toBe('resolved');
    expect(ok.kind === 'alert' && firing.kind === 'alert' && ok.alert.fingerprint === firing.alert.fingerprint).toBe(true);
    expect(parseCW(alarm({ NewStateValue: 'INSUFFICIENT_DATA' })).kind).toBe('ignored');
  });

  test('a dimension called alertname cannot rename the alert; composite alarms have no Trigger', () => {
    const r = parseCW(alarm({ Trigger: { Dimensions: [{ name: 'alertname', value: 'spoof' }] } }));
    expect(r.kind === 'alert' && r.alert.labels.alertname).toBe('cpu-high-web-1');
    expect(parseCW(alarm({ Trigger: undefined })).kind).toBe('alert');
  });

  test.each<[string, RegExp]>([
    ['not json', /not JSON/],
    [alarm({ NewStateValue: 'BROKEN' }), /NewStateValue/],
    [alarm({ AlarmName: undefined }), /Message\.AlarmName: required/],
    [alarm({ StateChangeTime: 'soon' }), /StateChangeTime/],
    [alarm({ AlarmArn: 'cpu' }), /not an alarm ARN/],
    [alarm({ Trigger: { Dimensions: [{ name: 'InstanceId' }] } }), /Message\.Trigger\.Dimensions\[0\]\.value: required/],
    ['"a string"', /expected object/],
  ])('%s → 422', (message, expected) => {
    const e = refusal(() => parseCW(message));
    expect(e.status).toBe(422);
    expect(e.message).toMatch(expected);
  });
});

describe('CloudWatch alarm provenance: the ARN decides, AWSAccountId and the topic must agree', () => {
  const arn = (region: string, account: string) => `arn:aws:cloudwatch:${region}:${account}:alarm:cpu`;
  test('a consistent alarm gives the account and region of its ARN', () => {
    expect(alarmProvenance(arn('eu-west-1', '111111111111'), '111111111111', 'arn:aws:sns:eu-west-1:111111111111:alarms')).toEqual({
      partition: 'aws',
      region: 'eu-west-1',
      account: '111111111111',
    });
  });
  test.each<[string, string, string | undefined, string, RegExp]>([
    ['an upper-case region in the ARN', arn('EU-WEST-1', '111111111111'), '111111111111', TOPIC, /not an alarm ARN/],
    ['an ARN without an account', 'arn:aws:cloudwatch:eu-west-1::alarm:cpu', '111111111111', TOPIC, /not an alarm ARN/],
    ['an ARN of another service', 'arn:aws:sns:eu-west-1:111111111111:alarm:cpu', '111111111111', TOPIC, /not an alarm ARN/],
    ['a missing AWSAccountId', arn('us-east-1', '123456789012'), undefined, TOPIC, /AWSAccountId null is not a 12-digit/],
    ['an empty AWSAccountId', arn('us-east-1', '123456789012'), '', TOPIC, /AWSAccountId "" is not a 12-digit/],
    ['a malformed AWSAccountId', arn('us-east-1', '123456789012'), '12345678901x', TOPIC, /not a 12-digit/],
    ['an AWSAccountId that disagrees with the ARN', arn('us-east-1', '123456789012'), '999999999999', TOPIC, /disagrees/],
    ['a topic in another account', arn('us-east-1', '999999999999'), '999999999999', TOPIC, /through topic .* of account 123456789012/],
    ['a malformed topic', arn('us-east-1', '123456789012'), '123456789012', 'alarms', /not an SNS topic ARN/],
  ])('%s → 422', (_what, alarmArn, account, topic, expected) => {
    const e = refusal(() => alarmProvenance(alarmArn, account, topic));
    expect(e.status).toBe(422);
    expect(e.message).toMatch(expected);
  });
  test('parsing refuses the same, and the alert always carries both account and region', () => {
    const message = (over: Record<string, unknown>) =>
      JSON.stringify({
        AlarmName: 'cpu',
        AlarmArn: arn('us-east-1', '123456789012'),
        NewStateValue: 'ALARM',
        StateChangeTime: '2025-03-01T10:00:00Z',
        ...over,
      });
    expect(refusal(() => parseCW(message({}))).status).toBe(422);
    expect(refusal(() => parseCW(message({ AWSAccountId: '123456789012' }), 'arn:aws:sns:us-east-1:222222222222:alarms')).status).toBe(422);
    const ok = parseCW(message({ AWSAccountId: '123456789012' }));
    expect(ok.kind === 'alert' && ok.alert).toMatchObject({ account: '123456789012', region: 'us-east-1' });
  });
});

describe('error paths', () => {
  test('JSON pointers read as JavaScript paths', () => {
    expect(jsonPath('/alerts/0/labels/severity')).toBe('alerts[0].labels.severity');
    expect(jsonPath('/labels/a~1b')).toBe('labels["a/b"]');
    expect(jsonPath('', 'Message')).toBe('Message');
    expect(jsonPath('')).toBe('(body)');
  });
});
