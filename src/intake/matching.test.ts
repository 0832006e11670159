import fc from 'fast-check';
import type { AlertPolicy, LabelMatcher } from '../api/v1alpha1/index.js';
import { anchoredRegex, matcherMatches, matchingPolicies, policyIsUsable, policyMatches } from './matching.js';

const m = (name: string, op: LabelMatcher['op'], value: string): LabelMatcher => ({ name, op, value });

function policy(
  name: string,
  match: AlertPolicy['spec']['match'],
  opts: { namespace?: string; ready?: 'True' | 'False'; deleting?: boolean } = {},
): AlertPolicy {
  return {
    metadata: { name, namespace: opts.namespace ?? 'ns', ...(opts.deleting && { deletionTimestamp: '2025-01-01T00:00:00Z' }) },
    spec: { match, targets: {}, runbookRef: { name: 'any' } },
    ...(opts.ready && {
      status: { conditions: [{ type: 'Ready', status: opts.ready, reason: 'X', message: '', lastTransitionTime: '2025-01-01T00:00:00Z' }] },
    }),
  };
}

describe('label matchers (Alertmanager semantics)', () => {
  const labels = { alertname: 'NginxDown', severity: 'critical', env: 'prod-eu' };

  test.each([
    [m('severity', '=', 'critical'), true],
    [m('severity', '=', 'Critical'), false],
    [m('severity', '!=', 'warning'), true],
    [m('severity', '!=', 'critical'), false],
    // A missing label has the value "".
    [m('team', '=', ''), true],
    [m('team', '!=', ''), false],
    [m('severity', '!=', ''), true],
    [m('team', '!~', '.+'), true],
    // Regexes are anchored at both ends.
    [m('env', '=~', 'prod'), false],
    [m('env', '=~', 'prod.*'), true],
    [m('env', '=~', '.*eu'), true],
    [m('env', '=~', 'prod-eu|staging'), true],
    [m('env', '=~', 'staging|prod'), false],
    [m('env', '!~', 'prod'), true],
    [m('env', '!~', 'prod-.*'), false],
    [m('alertname', '=~', 'Nginx(Down|Slow)'), true],
  ])('%j → %s', (matcher, expected) => {
    expect(matcherMatches(matcher, labels)).toBe(expected);
  });

  test('an invalid regex matches nothing, in either direction', () => {
    expect(anchoredRegex('(')).toBeUndefined();
    expect(matcherMatches(m('env', '=~', '('), labels)).toBe(false);
    expect(matcherMatches(m('env', '!~', '('), labels)).toBe(false);
  });

  test('regexes are RE2, as in Alertmanager: (?i) works, JavaScript-only syntax matches nothing', () => {
    expect(matcherMatches(m('alertname', '=~', '(?i)nginxdown'), labels)).toBe(true);
    // A backreference or lookbehind is not RE2: never a match, in either direction.
    for (const js of ['(prod)-\\1', '(?<=prod-)eu', '\\u0070rod-eu']) {
      expect(matcherMatches(m('env', '=~', js), labels)).toBe(false);
      expect(matcherMatches(m('env', '!~', js), labels)).toBe(false);
    }
  });

  test('a pathological matcher against a 4 KiB label value answers in milliseconds (issue 14)', () => {
    const slow = policy('slow', { labels: [m('alertname', '=~', '(.*.*)*XYZ')] }, { namespace: 'tenant-a' });
    const other = policy('other', { labels: [m('alertname', '=', 'DiskFull')] }, { namespace: 'tenant-b' });
    const t0 = performance.now();
    for (const n of [16, 22, 4096]) {
      expect(matchingPolicies([slow, other], { source: 'generic', labels: { alertname: 'a'.repeat(n) } })).toEqual([]);
    }
    expect(matchingPolicies([slow, other], { source: 'generic', labels: { alertname: 'DiskFull' } })).toEqual([other]);
    expect(performance.now() - t0).toBeLessThan(100);
  });

  test('an anchoring escape cannot widen a regex: `a)|(.*` still needs the whole value', () => {
    // ^(?:a)|(.*)$ would match anything if the value were not wrapped as one group.
    expect(matcherMatches(m('env', '=~', 'x|y'), labels)).toBe(false);
    // Unbalanced on its own: refused (matches nothing) rather than spliced into the anchors.
    expect(matcherMatches(m('env', '=~', 'a)|(.*'), labels)).toBe(false);
    expect(matcherMatches(m('env', '!~', 'a)|(.*'), labels)).toBe(false);
  });

  test('inherited properties are not labels: a matcher on "constructor" or "__proto__" sees ""', () => {
    expect(matcherMatches(m('constructor', '=', ''), labels)).toBe(true);
    expect(matcherMatches(m('toString', '!=', ''), labels)).toBe(false);
    expect(matcherMatches(m('__proto__', '=~', '.+'), labels)).toBe(false);
  });

  test('= and != are complements, as are =~ and !~ for valid regexes (property)', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })),
        fc.string({ maxLength: 5 }),
        fc.string({ maxLength: 5 }),
        (ls, name, value) => {
          expect(matcherMatches(m(name, '=', value), ls)).toBe(!matcherMatches(m(name, '!=', value), ls));
          const escaped = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          expect(matcherMatches(m(name, '=~', escaped), ls)).toBe(!matcherMatches(m(name, '!~', escaped), ls));
          // A literal regex matches exactly what = matches.
          expect(matcherMatches(m(name, '=~', escaped), ls)).toBe(matcherMatches(m(name, '=', value), ls));
        },
      ),
    );
  });
});

describe('policy matching', () => {
  const alert = { source: 'alertmanager' as const, labels: { alertname: 'NginxDown', severity: 'critical' } };

  test('no match section matches every alert of every source', () => {
    expect(policyMatches(policy('p', undefined), alert)).toBe(true);
    expect(policyMatches(policy('p', {}), { ...alert, source: 'cloudwatch' })).toBe(true);
  });

  test('sources filter by source; an empty list means all', () => {
    expect(policyMatches(policy('p', { sources: ['cloudwatch'] }), alert)).toBe(false);
    expect(policyMatches(policy('p', { sources: ['cloudwatch', 'alertmanager'] }), alert)).toBe(true);
    expect(policyMatches(policy('p', { sources: [] }), alert)).toBe(true);
  });

  test('every matcher must hold', () => {
    expect(policyMatches(policy('p', { labels: [m('alertname', '=', 'NginxDown'), m('severity', '=', 'critical')] }), alert)).toBe(true);
    expect(policyMatches(policy('p', { labels: [m('alertname', '=', 'NginxDown'), m('severity', '=', 'warning')] }), alert)).toBe(false);
  });

  test('Ready=False and deleting policies never match; no status yet does', () => {
    expect(policyIsUsable(policy('p', undefined))).toBe(true);
    expect(policyIsUsable(policy('p', undefined, { ready: 'True' }))).toBe(true);
    expect(policyIsUsable(policy('p', undefined, { ready: 'False' }))).toBe(false);
    expect(policyIsUsable(policy('p', undefined, { deleting: true }))).toBe(false);
  });

  test('matchingPolicies keeps usable matching policies, sorted, optionally in one namespace', () => {
    const all = [
      policy('b', undefined, { namespace: 'team-b' }),
      policy('a', { labels: [m('severity', '=', 'critical')] }, { namespace: 'team-a' }),
      policy('bad', undefined, { namespace: 'team-a', ready: 'False' }),
      policy('other', { sources: ['generic'] }, { namespace: 'team-a' }),
    ];
    expect(matchingPolicies(all, alert).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`)).toEqual(['team-a/a', 'team-b/b']);
    expect(matchingPolicies(all, alert, 'team-b').map((p) => p.metadata?.name)).toEqual(['b']);
    expect(matchingPolicies(all, alert, 'nowhere')).toEqual([]);
  });
});
