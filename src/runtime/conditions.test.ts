import { setCondition } from './conditions.js';

describe('setCondition', () => {
  test('moves lastTransitionTime only when the status changes', () => {
    let c = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, 't1');
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'B', message: 'b' }, 't2');
    expect(c).toEqual([{ type: 'Ready', status: 'False', reason: 'B', message: 'b', lastTransitionTime: 't1' }]);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'C', message: 'c' }, 't3');
    expect(c[0]?.lastTransitionTime).toBe('t3');
    c = setCondition(c, { type: 'Other', status: 'True', reason: 'D', message: 'd' }, 't4');
    expect(c.map((x) => x.type)).toEqual(['Ready', 'Other']);
  });
});
