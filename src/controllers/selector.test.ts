import { selectorMatches, selectsEverything } from './selector.js';

const labels = { team: 'a', tier: 'web', 'kubernetes.io/metadata.name': 'team-a' };

describe('selectorMatches (metav1.LabelSelector semantics)', () => {
  test('an absent selector matches nothing; {} matches everything', () => {
    expect(selectorMatches(undefined, labels)).toBe(false);
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({}, {})).toBe(true);
  });

  test('matchLabels must all hold', () => {
    expect(selectorMatches({ matchLabels: { team: 'a' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { team: 'a', tier: 'db' } }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { missing: '' } }, labels)).toBe(false);
  });

  test('matchExpressions: In, NotIn, Exists, DoesNotExist', () => {
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'In', values: ['b'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'nope', operator: 'In', values: [''] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['b'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] }, labels)).toBe(false);
    // NotIn matches when the key is absent, as upstream.
    expect(selectorMatches({ matchExpressions: [{ key: 'nope', operator: 'NotIn', values: ['a'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'nope', operator: 'Exists' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'nope', operator: 'DoesNotExist' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels)).toBe(false);
  });

  test('matchLabels and matchExpressions combine with AND', () => {
    const s = { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['db'] }] };
    expect(selectorMatches(s, labels)).toBe(false);
    expect(selectorMatches(s, { ...labels, tier: 'db' })).toBe(true);
  });

  test('selectsEverything only for a present selector without requirements', () => {
    expect(selectsEverything({})).toBe(true);
    expect(selectsEverything({ matchLabels: {}, matchExpressions: [] })).toBe(true);
    expect(selectsEverything(undefined)).toBe(false);
    expect(selectsEverything({ matchLabels: { a: 'b' } })).toBe(false);
  });
});
