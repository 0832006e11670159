/**
 * The one shape every intake source is turned into before matching: an alert occurrence
 * with a source, a name, labels, annotations, a fingerprint (which alert it is) and an
 * occurrence key (which firing of that alert it is). Alertmanager, CloudWatch-over-SNS
 * and generic payloads are parsed into this by their own modules; matching, naming and
 * request creation only ever see this type.
 */
import { createHash } from 'node:crypto';
import type { AlertSource } from '../api/v1alpha1/index.js';

export type AlertStatus = 'firing' | 'resolved';

export interface IntakeAlert {
  source: AlertSource;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Identifies the alert across its occurrences (Alertmanager's label hash, a CloudWatch alarm ARN hash, ...). */
  fingerprint: string;
  /** When this occurrence started, RFC 3339; recorded in `spec.alert.startsAt`. */
  startsAt: string;
  /**
   * Identifies this occurrence of the alert for deduplication: its `startsAt` when the
   * source says when it started (Alertmanager, CloudWatch, generic with `startsAt`),
   * else the start of the current dedup window (see naming.ts).
   */
  occurrence: string;
  status: AlertStatus;
  /** Where the alert came from (Alertmanager's generatorURL), for people following a request back. */
  generatorURL?: string;
  /** CloudWatch alarms: the account and region the alarm lives in; a runbook must act there. */
  account?: string;
  region?: string;
}

/** sha256 hex of the parts joined by newlines (a separator no part is hashed across). */
export function sha256Hex(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex');
}

/**
 * A string map built without ever assigning through `obj[key] = ...`, so a key such as
 * `__proto__` from a JSON payload stays an ordinary own property instead of touching a
 * prototype.
 */
export function stringMap(entries: Iterable<readonly [string, string]>): Record<string, string> {
  return Object.fromEntries(entries) as Record<string, string>;
}

/** The value of label `name`, or `''` when absent (Alertmanager semantics); never an inherited property. */
export function labelValue(labels: Record<string, string>, name: string): string {
  return Object.hasOwn(labels, name) ? (labels[name] ?? '') : '';
}

/** Label-set fingerprint for sources that send none: sha256 of the sorted label pairs, 16 hex like Alertmanager's. */
export function labelsFingerprint(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return sha256Hex(...pairs.map(([k, v]) => `${k}\u0000${v}`)).slice(0, 16);
}

/**
 * The label value that ties every RemediationRequest of one alert together
 * (`remediator.dev/alert`), whatever its occurrence or policy: a resolved alert finds
 * the requests to cancel by it. A hash, because fingerprints need not be valid label values.
 */
export function alertIdentity(source: AlertSource, fingerprint: string): string {
  return sha256Hex(source, fingerprint).slice(0, 32);
}

/** Parses an RFC 3339 timestamp into canonical ISO form (ms precision, UTC), or undefined. */
export function canonicalTime(value: string): string | undefined {
  // Require a date and a time with an explicit zone: `Date.parse` alone accepts far more
  // (bare dates, local times) than any of our sources legitimately send.
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$/.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}
