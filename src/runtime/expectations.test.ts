import { WriteExpectations } from './expectations.js';

describe('WriteExpectations (read-your-writes)', () => {
  let now = 0;
  const clock = { now: () => now };
  const K = 'ns/r';

  beforeEach(() => {
    now = 1_000;
  });

  test('without a write of ours any cached version may be acted on', () => {
    expect(new WriteExpectations(clock).check(K, '7')).toBe('fresh');
  });

  test('after a write, an older cached version is stale until the watch delivers the written one', () => {
    const e = new WriteExpectations(clock);
    e.wrote(K, '12', 'u1');
    expect(e.check(K, '11', 'u1')).toBe('stale');
    // An event in flight before our write arrives: still not ours.
    e.observed(K, '11');
    expect(e.check(K, '11', 'u1')).toBe('stale');
    e.observed(K, '12');
    // Delivered: whatever the cache shows from now on is newer (a key's events arrive in order).
    expect(e.check(K, '13', 'u1')).toBe('fresh');
    expect(e.size).toBe(0);
  });

  test('the cache holding exactly the written version is fresh even if its event was not reported', () => {
    const e = new WriteExpectations(clock);
    e.wrote(K, '12');
    expect(e.check(K, '12')).toBe('fresh');
  });

  test('resourceVersions are never ordered: a "larger" one that is not ours is still stale', () => {
    const e = new WriteExpectations(clock);
    e.wrote(K, '9');
    expect(e.check(K, '10')).toBe('stale');
  });

  test('a write whose answer was lost sends the next reconcile to the server', () => {
    const e = new WriteExpectations(clock);
    e.wrote(K, undefined);
    expect(e.check(K, '12')).toBe('read');
  });

  test('a write whose event never comes (a relist after compaction) is read from the server after maxWaitMs', () => {
    const e = new WriteExpectations(clock, 2_000);
    e.wrote(K, '12');
    now += 1_999;
    expect(e.check(K, '15')).toBe('stale');
    expect(e.waitLeftMs(K)).toBe(1);
    now += 1;
    expect(e.check(K, '15')).toBe('read');
  });

  test('a new object under the same name owes nothing to our write on the old one', () => {
    const e = new WriteExpectations(clock);
    e.wrote(K, '12', 'old');
    expect(e.check(K, '20', 'new')).toBe('fresh');
  });

  test('a deletion clears the expectation', () => {
    const e = new WriteExpectations(clock);
    e.wrote(K, '12');
    e.forget(K);
    expect(e.check(K, '3')).toBe('fresh');
  });
});
