/**
 * The generic JSON alert (`POST /v1/alerts`) into an intake alert, for senders that are
 * neither Alertmanager nor CloudWatch (scripts, CI, other monitoring systems).
 *
 * `name` is required; `labels`, `annotations` and `status` (default `firing`) are
 * optional. `alertname` is added to the labels from `name` when absent, so policies can
 * match every source the same way. Without a `fingerprint`, one is computed from the
 * name and labels (like Alertmanager's); without `startsAt`, the occurrence is the
 * current dedup window (see naming.ts) — send `startsAt` for exact deduplication.
 */
import { canonicalTime, labelsFingerprint, stringMap, type IntakeAlert } from './alert.js';
import { IntakeError } from './errors.js';
import { windowOccurrence } from './naming.js';
import { checkers, validate, type GenericAlert } from './schemas.js';

export function parseGeneric(body: unknown, nowMs: number, dedupWindowMs: number): IntakeAlert {
  const a: GenericAlert = validate(checkers.generic, body, 'alert');
  const labels = stringMap(Object.entries(a.labels ?? {}));
  const withName = Object.hasOwn(labels, 'alertname') ? labels : stringMap([...Object.entries(labels), ['alertname', a.name]]);
  let startsAt: string;
  let occurrence: string;
  if (a.startsAt !== undefined) {
    const t = canonicalTime(a.startsAt);
    if (!t)
      throw new IntakeError(
        422,
        `invalid alert: startsAt ${JSON.stringify(a.startsAt)} is not an RFC 3339 timestamp (e.g. 2025-01-31T12:00:00Z)`,
      );
    startsAt = t;
    occurrence = t;
  } else {
    startsAt = new Date(nowMs).toISOString();
    occurrence = windowOccurrence(nowMs, dedupWindowMs);
  }
  return {
    source: 'generic',
    name: a.name,
    labels: withName,
    annotations: stringMap(Object.entries(a.annotations ?? {})),
    fingerprint: a.fingerprint ?? labelsFingerprint(withName),
    startsAt,
    occurrence,
    status: a.status ?? 'firing',
  };
}
