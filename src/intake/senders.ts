/**
 * The alerting tools users already run, each mapped onto the one alert model (alert.ts):
 * Grafana alerting's webhook contact point, Datadog's webhook integration and PagerDuty's
 * v3 webhooks. Each gets its own endpoint (`/v1/alerts/<sender>`), authenticated with the
 * intake's bearer token like Alertmanager; docs/intake.md says how to configure each side.
 *
 * Every alert of these senders has source `generic` (the AlertPolicy API knows
 * `alertmanager`, `cloudwatch` and `generic`) and carries the label
 * `remediator_sender: grafana|datadog|pagerduty`, so a policy can pick one sender; its
 * fingerprint is prefixed with the sender, so two senders' alerts never share requests.
 *
 * What each sender's states mean here:
 * - Grafana: `firing` / `resolved` per alert, exactly as Alertmanager.
 * - Datadog: `$ALERT_TRANSITION` `Triggered`, `Re-Triggered` and `Renotify` fire,
 *   `Recovered` resolves; `Warn`, `Re-Warn`, `No Data`, `Re-No Data` and anything else are
 *   acknowledged without effect (a warning threshold is not a reason to run a command).
 * - PagerDuty: `incident.triggered` and `incident.reopened` fire, `incident.resolved`
 *   resolves; every other event (acknowledged, annotated, escalated, ...) is acknowledged.
 */
import type { AlertSource } from '../api/v1alpha1/index.js';
import { canonicalTime, labelsFingerprint, stringMap, type IntakeAlert } from './alert.js';
import { alertmanagerAlert } from './alertmanager.js';
import { IntakeError } from './errors.js';
import { windowOccurrence } from './naming.js';
import { checkers, LIMITS, validate, type DatadogPayload, type GrafanaPayload, type PagerDutyWebhook } from './schemas.js';

export const SENDERS = ['grafana', 'datadog', 'pagerduty'] as const;
export type Sender = (typeof SENDERS)[number];

/** The label naming the sender of an alert that came through a sender endpoint. */
export const SENDER_LABEL = 'remediator_sender';

/** The alert source each sender's alerts carry (one place to change when the API gains sources of its own). */
const SOURCE: Record<Sender, AlertSource> = { grafana: 'generic', datadog: 'generic', pagerduty: 'generic' };

/** What a sender's payload amounts to: alerts, or a note that it was acknowledged without effect. */
export type SenderResult = { kind: 'alerts'; alerts: IntakeAlert[] } | { kind: 'ignored'; reason: string };

export interface SenderContext {
  nowMs: number;
  dedupWindowMs: number;
  maxAlerts: number;
}

export function parseSender(sender: Sender, body: unknown, ctx: SenderContext): SenderResult {
  switch (sender) {
    case 'grafana':
      return { kind: 'alerts', alerts: parseGrafana(body, ctx.maxAlerts) };
    case 'datadog':
      return parseDatadog(body, ctx);
    case 'pagerduty':
      return parsePagerDuty(body);
  }
}

function fromSender(sender: Sender, alert: Omit<IntakeAlert, 'source'>): IntakeAlert {
  return {
    ...alert,
    source: SOURCE[sender],
    labels: stringMap([...Object.entries(alert.labels).filter(([k]) => k !== SENDER_LABEL), [SENDER_LABEL, sender]]),
    fingerprint: `${sender}:${alert.fingerprint}`.slice(0, LIMITS.fingerprint),
  };
}

/** Grafana's webhook: Alertmanager's alerts, `version: "1"`. */
export function parseGrafana(body: unknown, maxAlerts: number): IntakeAlert[] {
  const count =
    body !== null && typeof body === 'object' && Array.isArray((body as { alerts?: unknown }).alerts)
      ? (body as { alerts: unknown[] }).alerts.length
      : 0;
  if (count > maxAlerts) {
    throw new IntakeError(
      413,
      `payload carries ${count} alerts, more than the ${maxAlerts} accepted in one request; ` +
        `set "Max alerts" to ${maxAlerts} or lower in the Grafana webhook contact point`,
    );
  }
  const payload: GrafanaPayload = validate(checkers.grafana, body, 'Grafana webhook payload');
  if (payload.version !== '1') {
    throw new IntakeError(
      422,
      `unsupported Grafana webhook version ${JSON.stringify(payload.version.slice(0, 16))}: ` +
        'this endpoint accepts the contact point\'s version "1" payload',
    );
  }
  return payload.alerts.map((a, i) => fromSender('grafana', alertmanagerAlert(a, `alerts[${i}]`, 'Grafana webhook payload')));
}

const DATADOG_FIRING = new Set(['Triggered', 'Re-Triggered', 'Renotify']);
const DATADOG_RESOLVED = new Set(['Recovered']);

/**
 * `"env:prod,host:i-0abc,team"` (Datadog's `$TAGS` and `$ALERT_SCOPE`) into labels:
 * `key:value` pairs, a bare tag as a label with value `"true"`. Only the first `:` splits,
 * since values may contain colons (`url:https://...`).
 */
export function datadogTags(text: string | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const raw of (text ?? '').split(',')) {
    const tag = raw.trim();
    if (tag === '' || tag === '*') continue;
    const colon = tag.indexOf(':');
    const [k, v] = colon < 0 ? [tag, 'true'] : [tag.slice(0, colon), tag.slice(colon + 1)];
    if (k === '' || k.length > LIMITS.labelName || v.length > LIMITS.labelValue) continue;
    out.push([k, v]);
  }
  return out.slice(0, LIMITS.labelsPerAlert - 8);
}

/** `[P1] [Triggered on {host:x}] CPU high` → `CPU high`: the monitor's name, the same on every transition. */
export function datadogAlertName(title: string, alertId: string): string {
  const name = title.replace(/^\s*(\[[^\]]*\]\s*)+/, '').trim();
  return (name || `datadog-monitor-${alertId}`).slice(0, LIMITS.alertName);
}

/** Datadog's `$DATE`/`$LAST_UPDATED`: epoch milliseconds (or seconds), or RFC 3339. */
function datadogTime(value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d{9,13}$/.test(value.trim())) {
    const n = Number(value);
    return new Date(n < 1e11 ? n * 1000 : n).toISOString();
  }
  return canonicalTime(value.trim());
}

export function parseDatadog(body: unknown, ctx: SenderContext): SenderResult {
  const p: DatadogPayload = validate(checkers.datadog, body, 'Datadog webhook payload');
  const transition = p.alert_transition.trim();
  if (transition.startsWith('$'))
    throw new IntakeError(
      422,
      "invalid Datadog webhook payload: alert_transition was not substituted; use Datadog's $ALERT_TRANSITION variable",
    );
  const status = DATADOG_FIRING.has(transition) ? 'firing' : DATADOG_RESOLVED.has(transition) ? 'resolved' : undefined;
  if (status === undefined)
    return { kind: 'ignored', reason: `Datadog transition ${JSON.stringify(transition.slice(0, 40))} neither fires nor resolves` };
  const name = datadogAlertName(p.title, p.alert_id);
  // The monitor and the group it fired for (its scope) are the alert; each trigger-to-recovery cycle an occurrence.
  const scope = (p.alert_scope ?? '').trim();
  const labels = stringMap([
    ...datadogTags(p.tags),
    ...datadogTags(scope),
    ...(p.hostname ? [['host', p.hostname] as [string, string]] : []),
    ['alertname', name],
    ['datadog_monitor_id', p.alert_id],
    ...(p.alert_priority ? [['priority', p.alert_priority] as [string, string]] : []),
  ]);
  const at = datadogTime(p.date);
  if (p.date !== undefined && p.date.trim() !== '' && at === undefined) {
    throw new IntakeError(
      422,
      `invalid Datadog webhook payload: date ${JSON.stringify(p.date.slice(0, 40))} is neither epoch milliseconds ($DATE) nor RFC 3339`,
    );
  }
  const startsAt = at ?? new Date(ctx.nowMs).toISOString();
  const cycle = p.alert_cycle_key?.trim();
  const annotations = stringMap([
    ...(p.title ? [['title', p.title.slice(0, LIMITS.annotationValue)] as [string, string]] : []),
    ...(p.event_msg ? [['description', p.event_msg] as [string, string]] : []),
    ...(p.link ? [['link', p.link] as [string, string]] : []),
    ['datadog_transition', transition],
  ]);
  const alert = fromSender('datadog', {
    name,
    labels,
    annotations,
    fingerprint: `${p.alert_id}/${scope === '' ? '*' : labelsFingerprint(stringMap(datadogTags(scope)))}`,
    startsAt,
    // Without a cycle key, a re-sent Triggered within the dedup window dedupes.
    occurrence: cycle ? `cycle:${cycle}` : windowOccurrence(ctx.nowMs, ctx.dedupWindowMs),
    status,
  });
  if (p.link) alert.generatorURL = p.link;
  return { kind: 'alerts', alerts: [alert] };
}

const PAGERDUTY_FIRING = new Set(['incident.triggered', 'incident.reopened']);

export function parsePagerDuty(body: unknown): SenderResult {
  const { event }: PagerDutyWebhook = validate(checkers.pagerduty, body, 'PagerDuty webhook');
  const firing = PAGERDUTY_FIRING.has(event.event_type);
  if (!firing && event.event_type !== 'incident.resolved') {
    return { kind: 'ignored', reason: `PagerDuty event ${JSON.stringify(event.event_type.slice(0, 60))} neither fires nor resolves` };
  }
  const d = event.data;
  const occurredAt = canonicalTime(event.occurred_at);
  if (!occurredAt)
    throw new IntakeError(
      422,
      `invalid PagerDuty webhook: event.occurred_at ${JSON.stringify(event.occurred_at.slice(0, 40))} is not an RFC 3339 timestamp`,
    );
  // A firing incident's occurrence is when it was created (or reopened); a resolution's time is when it happened.
  const created = d.created_at ? canonicalTime(d.created_at) : undefined;
  const startsAt = firing ? (event.event_type === 'incident.reopened' ? occurredAt : (created ?? occurredAt)) : occurredAt;
  const name = (d.title?.trim() || `pagerduty-incident-${d.id}`).slice(0, LIMITS.alertName);
  const labels = stringMap([
    ['alertname', name],
    ['pagerduty_incident_id', d.id],
    ...(d.service?.summary ? [['service', d.service.summary.slice(0, LIMITS.labelValue)] as [string, string]] : []),
    ...(d.service?.id ? [['pagerduty_service_id', d.service.id] as [string, string]] : []),
    ...(d.urgency ? [['urgency', d.urgency] as [string, string]] : []),
    ...(d.priority?.summary ? [['priority', d.priority.summary.slice(0, LIMITS.labelValue)] as [string, string]] : []),
    ...(d.incident_key ? [['incident_key', d.incident_key] as [string, string]] : []),
  ]);
  const alert = fromSender('pagerduty', {
    name,
    labels,
    annotations: stringMap([...(d.title ? [['summary', d.title] as [string, string]] : []), ['pagerduty_event', event.event_type]]),
    fingerprint: d.id,
    startsAt,
    occurrence: startsAt,
    status: firing ? 'firing' : 'resolved',
  });
  if (d.html_url) alert.generatorURL = d.html_url;
  return { kind: 'alerts', alerts: [alert] };
}
