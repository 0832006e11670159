import { datadogWebhook, grafanaWebhook, pagerDutyWebhook } from '../../test/e2e/intake-fixtures.js';
import type { IntakeAlert } from './alert.js';
import { IntakeError } from './errors.js';
import { datadogAlertName, datadogTags, parseSender, SENDER_LABEL, type SenderResult } from './senders.js';

const ctx = { nowMs: Date.parse('2025-10-12T10:00:00Z'), dedupWindowMs: 3_600_000, maxAlerts: 500 };
const I = 'i-0a1b2c3d4e5f60789';

function alerts(r: SenderResult): IntakeAlert[] {
  if (r.kind !== 'alerts') throw new Error(`expected alerts, got ${r.reason}`);
  return r.alerts;
}

describe('Grafana alerting webhook', () => {
  test('firing and resolved alerts map to the alert model, labelled with their sender', () => {
    const [firing] = alerts(
      parseSender('grafana', grafanaWebhook({ status: 'firing', instanceId: I, fingerprint: 'c6eadffa33fcdf37' }), ctx),
    );
    expect(firing).toMatchObject({
      source: 'generic',
      name: 'High memory usage',
      status: 'firing',
      fingerprint: 'grafana:c6eadffa33fcdf37',
      startsAt: '2025-10-12T07:51:03.157Z',
      occurrence: '2025-10-12T07:51:03.157Z',
      generatorURL: 'https://grafana.example.com/alerting/grafana/1afz29v7z/view?orgId=1',
    });
    expect(firing!.labels).toMatchObject({ alertname: 'High memory usage', instance_id: I, [SENDER_LABEL]: 'grafana' });
    const [resolved] = alerts(
      parseSender('grafana', grafanaWebhook({ status: 'resolved', instanceId: I, fingerprint: 'c6eadffa33fcdf37' }), ctx),
    );
    expect(resolved).toMatchObject({ status: 'resolved', fingerprint: firing!.fingerprint });
  });

  test('another version or too many alerts is refused with what to change', () => {
    expect(() =>
      parseSender('grafana', { ...grafanaWebhook({ status: 'firing', instanceId: I, fingerprint: 'f' }), version: '2' }, ctx),
    ).toThrow(/version "2"/);
    expect(() =>
      parseSender('grafana', grafanaWebhook({ status: 'firing', instanceId: I, fingerprint: 'f' }), { ...ctx, maxAlerts: 0 }),
    ).toThrow(/Max alerts/);
  });

  test('a sender label in the payload cannot pose as another sender', () => {
    const body = grafanaWebhook({ status: 'firing', instanceId: I, fingerprint: 'f' });
    (body.alerts[0]!.labels as Record<string, string>)[SENDER_LABEL] = 'datadog';
    expect(alerts(parseSender('grafana', body, ctx))[0]!.labels[SENDER_LABEL]).toBe('grafana');
  });
});

describe('Datadog webhook', () => {
  const dd = (transition: string, dateMs = Date.parse('2025-10-12T09:30:00Z')) =>
    parseSender(
      'datadog',
      datadogWebhook({ transition, instanceId: I, monitorId: '12345678', cycleKey: '7473469394128093417', dateMs }),
      ctx,
    );

  test('Triggered fires and Recovered resolves the same alert (same fingerprint, later time)', () => {
    const [fire] = alerts(dd('Triggered'));
    const [recover] = alerts(dd('Recovered', Date.parse('2025-10-12T09:45:00Z')));
    expect(fire).toMatchObject({
      source: 'generic',
      name: 'Disk almost full on /var',
      status: 'firing',
      startsAt: '2025-10-12T09:30:00.000Z',
      occurrence: 'cycle:7473469394128093417',
    });
    expect(fire!.labels).toMatchObject({
      env: 'prod',
      host: I,
      instance_id: I,
      monitor: 'true',
      team: 'web',
      datadog_monitor_id: '12345678',
      priority: 'P2',
      [SENDER_LABEL]: 'datadog',
    });
    expect(recover).toMatchObject({ status: 'resolved', name: fire!.name, fingerprint: fire!.fingerprint });
    expect(Date.parse(recover!.startsAt)).toBeGreaterThan(Date.parse(fire!.startsAt));
  });

  test.each(['Re-Triggered', 'Renotify'])('%s fires', (t) => expect(alerts(dd(t))[0]!.status).toBe('firing'));

  test.each(['Warn', 'Re-Warn', 'No Data', 'Re-No Data', 'Snoozed'])('%s is acknowledged without effect', (t) => {
    expect(dd(t)).toEqual({ kind: 'ignored', reason: expect.stringContaining(t) });
  });

  test('a variable Datadog did not substitute, or a bad date, is a 422 that names it', () => {
    expect(() => dd('$ALERT_TRANSITION')).toThrow(/\$ALERT_TRANSITION variable/);
    const bad = {
      ...datadogWebhook({ transition: 'Triggered', instanceId: I, monitorId: '1', cycleKey: 'c', dateMs: 0 }),
      date: 'yesterday',
    };
    expect(() => parseSender('datadog', bad, ctx)).toThrow(IntakeError);
  });

  test('tags and titles', () => {
    expect(datadogTags('env:prod, url:https://x:1/a ,bare,,*')).toEqual([
      ['env', 'prod'],
      ['url', 'https://x:1/a'],
      ['bare', 'true'],
    ]);
    expect(datadogAlertName('[P1] [Triggered on {host:a}] CPU high', '9')).toBe('CPU high');
    expect(datadogAlertName('[Recovered] ', '9')).toBe('datadog-monitor-9');
  });
});

describe('PagerDuty v3 webhook', () => {
  const pd = (eventType: string, occurredAt = '2025-10-12T09:40:00Z') =>
    parseSender('pagerduty', pagerDutyWebhook({ eventType, incidentId: 'PGR0VU2', createdAt: '2025-10-12T09:30:00Z', occurredAt }), ctx);

  test('incident.triggered fires and incident.resolved resolves the same alert', () => {
    const [fire] = alerts(pd('incident.triggered', '2025-10-12T09:30:01Z'));
    const [resolve] = alerts(pd('incident.resolved', '2025-10-12T09:50:00Z'));
    expect(fire).toMatchObject({
      source: 'generic',
      name: 'nginx down on web tier',
      status: 'firing',
      fingerprint: 'pagerduty:PGR0VU2',
      startsAt: '2025-10-12T09:30:00.000Z',
    });
    expect(fire!.labels).toMatchObject({
      service: 'web-frontend',
      urgency: 'high',
      priority: 'P1',
      pagerduty_incident_id: 'PGR0VU2',
      [SENDER_LABEL]: 'pagerduty',
    });
    expect(resolve).toMatchObject({ status: 'resolved', fingerprint: fire!.fingerprint, startsAt: '2025-10-12T09:50:00.000Z' });
  });

  test('a reopened incident is a new occurrence', () => {
    const [again] = alerts(pd('incident.reopened', '2025-10-12T11:00:00Z'));
    expect(again).toMatchObject({ status: 'firing', occurrence: '2025-10-12T11:00:00.000Z' });
  });

  test.each(['incident.acknowledged', 'incident.annotated', 'incident.escalated', 'service.updated'])(
    '%s is acknowledged without effect',
    (t) => {
      expect(pd(t).kind).toBe('ignored');
    },
  );

  test('a delivery that is not a v3 webhook is a 422 naming the field', () => {
    expect(() => parseSender('pagerduty', { messages: [] }, ctx)).toThrow(/event: required field is missing/);
  });
});
