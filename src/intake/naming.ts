/**
 * Deterministic RemediationRequest names: the same alert occurrence and policy always
 * give the same name, so a re-sent alert's create answers 409 AlreadyExists and makes
 * nothing new. The API server is the lock — no cache, no read-before-write, and no race
 * between replicas.
 *
 * The name is `<policy name, truncated>-<10 hex of sha256(namespace/policy, source,
 * fingerprint, occurrence)>`: a valid DNS-1123 subdomain of at most 63 characters (so it
 * also fits label values and Event names), readable at a glance in `kubectl get rr`.
 *
 * The dedup window is the alert occurrence: an occurrence is keyed by its `startsAt`
 * (Alertmanager keeps `startsAt` across every re-send of a firing alert; CloudWatch's is
 * the alarm's `StateChangeTime`), so re-sends dedupe for as long as the request exists,
 * and the next firing after a resolve gets a new request. A generic alert without
 * `startsAt` cannot say which occurrence it is; its occurrence is the start of the
 * current fixed window of `--intake-dedup-window` (1 h by default).
 */
import { sha256Hex } from './alert.js';
import type { IntakeAlert } from './alert.js';

export const MAX_NAME_LENGTH = 63;
const HASH_LENGTH = 10;

export function requestName(
  policyNamespace: string,
  policyName: string,
  alert: Pick<IntakeAlert, 'source' | 'fingerprint' | 'occurrence'>,
): string {
  const hash = sha256Hex(`${policyNamespace}/${policyName}`, alert.source, alert.fingerprint, alert.occurrence).slice(0, HASH_LENGTH);
  // Policy names are DNS-1123 subdomains already; truncating may leave a trailing '-' or
  // '.', which a name may not have before our '-'.
  const prefix = policyName
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .slice(0, MAX_NAME_LENGTH - HASH_LENGTH - 1)
    .replace(/[^a-z0-9]+$/, '')
    .replace(/^[^a-z0-9]+/, '');
  return `${prefix || 'alert'}-${hash}`;
}

/** The start of the fixed dedup window containing `nowMs`, as the occurrence of an alert that has no `startsAt`. */
export function windowOccurrence(nowMs: number, windowMs: number): string {
  return new Date(Math.floor(nowMs / windowMs) * windowMs).toISOString();
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A namespace name. */
export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

/** A Kubernetes label value: at most 63 characters, alphanumerics with `-_.` inside. */
export function isLabelValue(s: string): boolean {
  return s.length <= 63 && /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(s);
}
