import fc from 'fast-check';
import { alertIdentity, canonicalTime, labelsFingerprint } from './alert.js';
import { isDns1123Subdomain, isLabelValue, MAX_NAME_LENGTH, requestName, windowOccurrence } from './naming.js';

const alert = { source: 'alertmanager' as const, fingerprint: 'a1b2c3d4e5f60718', occurrence: '2025-03-01T10:00:00.000Z' };

describe('requestName', () => {
  test('is the policy name and 10 hex of the hash', () => {
    expect(requestName('ns', 'restart-nginx', alert)).toMatch(/^restart-nginx-[0-9a-f]{10}$/);
  });

  test('is deterministic, and differs by policy, namespace, source, fingerprint and occurrence', () => {
    const base = requestName('ns', 'p', alert);
    expect(requestName('ns', 'p', { ...alert })).toBe(base);
    const variants = [
      requestName('ns2', 'p', alert),
      requestName('ns', 'q', alert),
      requestName('ns', 'p', { ...alert, source: 'generic' }),
      requestName('ns', 'p', { ...alert, fingerprint: 'other' }),
      requestName('ns', 'p', { ...alert, occurrence: '2025-03-01T11:00:00.000Z' }),
    ];
    expect(new Set([base, ...variants]).size).toBe(6);
  });

  test('truncates long policy names without leaving a dangling separator', () => {
    const name = requestName('ns', `${'a'.repeat(51)}-b.c`, alert);
    expect(name.length).toBeLessThanOrEqual(MAX_NAME_LENGTH);
    expect(name).toMatch(/^a{51}-[0-9a-f]{10}$/);
    expect(requestName('ns', `${'a'.repeat(51)}.bbbb`, alert)).toMatch(/^a{51}-[0-9a-f]{10}$/);
  });

  test('is always a valid DNS-1123 subdomain of at most 63 characters (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
    const policyName = fc
      .array(label, { minLength: 1, maxLength: 12 })
      .map((parts) => parts.join('.').slice(0, 253))
      .filter((s) => isDns1123Subdomain(s));
    fc.assert(
      fc.property(policyName, fc.string(), fc.string(), (p, fingerprint, occurrence) => {
        const name = requestName('ns', p, { source: 'generic', fingerprint, occurrence });
        expect(name.length).toBeLessThanOrEqual(MAX_NAME_LENGTH);
        expect(isDns1123Subdomain(name)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('dedup window', () => {
  test('the occurrence of an alert without startsAt is the start of its window', () => {
    const hour = 3_600_000;
    const t = Date.parse('2025-03-01T10:59:59.999Z');
    expect(windowOccurrence(t, hour)).toBe('2025-03-01T10:00:00.000Z');
    expect(windowOccurrence(t + 1, hour)).toBe('2025-03-01T11:00:00.000Z');
  });
});

describe('alert identity and fingerprints', () => {
  test('alertIdentity is a valid label value, stable, and source-specific', () => {
    const id = alertIdentity('alertmanager', 'x'.repeat(128));
    expect(isLabelValue(id)).toBe(true);
    expect(id).toBe(alertIdentity('alertmanager', 'x'.repeat(128)));
    expect(id).not.toBe(alertIdentity('generic', 'x'.repeat(128)));
  });

  test('labelsFingerprint ignores label order and sees every pair', () => {
    expect(labelsFingerprint({ a: '1', b: '2' })).toBe(labelsFingerprint({ b: '2', a: '1' }));
    expect(labelsFingerprint({ a: '1', b: '2' })).not.toBe(labelsFingerprint({ a: '12', b: '' }));
    expect(labelsFingerprint({ a: '1' })).toMatch(/^[0-9a-f]{16}$/);
  });

  test('canonicalTime accepts RFC 3339 (with nanoseconds, offsets, CloudWatch +0000) and nothing looser', () => {
    expect(canonicalTime('2025-03-01T10:00:00.123456789Z')).toBe('2025-03-01T10:00:00.123Z');
    expect(canonicalTime('2025-03-01T12:00:00+02:00')).toBe('2025-03-01T10:00:00.000Z');
    expect(canonicalTime('2025-03-01T10:00:00.000+0000')).toBe('2025-03-01T10:00:00.000Z');
    expect(canonicalTime('0001-01-01T00:00:00Z')).toBe('0001-01-01T00:00:00.000Z');
    for (const bad of ['2025-03-01', '2025-03-01T10:00:00', 'yesterday', '', '2025-13-45T99:99:99Z', '1714557600']) {
      expect(canonicalTime(bad)).toBeUndefined();
    }
  });
});
