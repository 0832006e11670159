import { ApiException } from '@kubernetes/client-node';
import { whileThrottled } from './client.js';

const throttled = (headers: Record<string, string> = {}) =>
  new ApiException(429, 'Too Many Requests', { message: 'storage is (re)initializing' }, headers);

describe('whileThrottled', () => {
  test('a CRD installed seconds ago answers 429 until its storage is ready: the call is repeated, then succeeds', async () => {
    const waits: number[] = [];
    let calls = 0;
    const result = await whileThrottled(
      async () => {
        calls++;
        if (calls < 3) throw throttled(calls === 1 ? { 'retry-after': '1' } : {});
        return 'listed';
      },
      async (ms) => {
        waits.push(ms);
      },
    );
    expect(result).toBe('listed');
    expect(calls).toBe(3);
    expect(waits).toEqual([1000, 1000]);
  });

  test('a 429 that does not go away is reported after the last attempt, not hidden', async () => {
    let calls = 0;
    const failing = whileThrottled(
      async () => {
        calls++;
        throw throttled();
      },
      async () => undefined,
      4,
    );
    await expect(failing).rejects.toMatchObject({ code: 429 });
    expect(calls).toBe(4);
  });

  test('other failures are not repeated: a 409 on an approval patch must reach the user at once', async () => {
    let calls = 0;
    const conflict = whileThrottled(
      async () => {
        calls++;
        throw new ApiException(409, 'Conflict', {}, {});
      },
      async () => undefined,
    );
    await expect(conflict).rejects.toMatchObject({ code: 409 });
    expect(calls).toBe(1);
  });

  test('a hostile Retry-After is capped: the user waits at most 5 s per attempt', async () => {
    const waits: number[] = [];
    let calls = 0;
    await whileThrottled(
      async () => {
        if (calls++ === 0) throw throttled({ 'retry-after': '86400' });
        return 'ok';
      },
      async (ms) => {
        waits.push(ms);
      },
    );
    expect(waits).toEqual([5000]);
  });
});
