/**
 * Prometheus Alertmanager webhook payloads (version 4) into intake alerts. Alertmanager
 * sends a whole notification group at once; it is accepted or refused as a whole, so a
 * refused payload has created nothing and a fixed one can simply be re-sent.
 *
 * Each alert's name is its `alertname` label, its fingerprint Alertmanager's own (a hash
 * of the label set, stable across re-sends and across HA peers), and its occurrence its
 * `startsAt`, which Alertmanager keeps for as long as the alert fires.
 */
import { canonicalTime, labelsFingerprint, stringMap, type IntakeAlert } from './alert.js';
import { IntakeError } from './errors.js';
import { checkers, LIMITS, validate, type AlertmanagerAlert, type AlertmanagerPayload } from './schemas.js';

export const ALERTMANAGER_WEBHOOK_VERSION = '4';

export function parseAlertmanager(body: unknown, maxAlerts: number): IntakeAlert[] {
  // Counted before the schema check, so an oversized group gets the actionable answer.
  const count =
    body !== null && typeof body === 'object' && Array.isArray((body as { alerts?: unknown }).alerts)
      ? (body as { alerts: unknown[] }).alerts.length
      : 0;
  if (count > maxAlerts) {
    throw new IntakeError(
      413,
      `payload carries ${count} alerts, more than the ${maxAlerts} accepted in one request; set max_alerts: ${maxAlerts} (or lower) in the Alertmanager webhook_config`,
    );
  }
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && typeof (body as { version?: unknown }).version === 'string') {
    const version = (body as { version: string }).version;
    if (version !== ALERTMANAGER_WEBHOOK_VERSION) {
      throw new IntakeError(
        422,
        `unsupported Alertmanager webhook version ${JSON.stringify(version.slice(0, 16))}: this endpoint accepts version "4" (Alertmanager 0.x)`,
      );
    }
  }
  const payload: AlertmanagerPayload = validate(checkers.alertmanager, body, 'Alertmanager webhook payload');
  return payload.alerts.map((a, i) => alertmanagerAlert(a, `alerts[${i}]`, 'Alertmanager webhook payload'));
}

/**
 * One alert in Alertmanager's shape (also Grafana's) into an intake alert of source
 * `alertmanager`; `what` names the payload in errors.
 */
export function alertmanagerAlert(a: AlertmanagerAlert, at: string, what: string): IntakeAlert {
  const labels = stringMap(Object.entries(a.labels));
  const name = Object.hasOwn(labels, 'alertname') ? labels.alertname! : '';
  if (name === '') throw new IntakeError(422, `invalid ${what}: ${at}.labels.alertname is missing or empty; every alert needs a name`);
  if (name.length > LIMITS.alertName) {
    throw new IntakeError(422, `invalid ${what}: ${at}.labels.alertname is longer than ${LIMITS.alertName} characters`);
  }
  const startsAt = canonicalTime(a.startsAt);
  if (!startsAt) throw new IntakeError(422, `invalid ${what}: ${at}.startsAt ${JSON.stringify(a.startsAt)} is not an RFC 3339 timestamp`);
  if (a.endsAt !== undefined && !canonicalTime(a.endsAt)) {
    throw new IntakeError(422, `invalid ${what}: ${at}.endsAt ${JSON.stringify(a.endsAt)} is not an RFC 3339 timestamp`);
  }
  const alert: IntakeAlert = {
    source: 'alertmanager',
    name,
    labels,
    annotations: stringMap(Object.entries(a.annotations ?? {})),
    fingerprint: a.fingerprint ?? labelsFingerprint(labels),
    startsAt,
    occurrence: startsAt,
    status: a.status,
  };
  if (a.generatorURL) alert.generatorURL = a.generatorURL;
  return alert;
}
