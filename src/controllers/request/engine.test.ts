/**
 * The execution engine's rules, one by one, against the shared AWS fakes (src/fakes):
 * what is performed at once, adopted, waited for, refused for good, or left unknown.
 */
import { AwsAccessDeniedError, type SentCommand } from '../../cloud/types.js';
import { FakeSns, FakeSsm, throttled } from '../../fakes/aws.js';
import { WriteExpectations } from '../../runtime/expectations.js';
import { type Effect, ExecutionEngine, FIFO_DEDUP_WINDOW_MS, StaleViewError, type View } from './engine.js';

const UID = 'u-1';
const COMMENT = `remediator:${UID}`;
const view: View = { key: 'ns/r', resourceVersion: '5', uid: UID };

function world() {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const intentAt = now;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const expectations = new WriteExpectations(clock);
  const engine = new ExecutionEngine(clock, expectations);
  const ssm = new FakeSsm(clock);
  const sns = new FakeSns(clock);
  const runner = ssm.runner();
  const command = (): Effect<SentCommand> => ({
    kind: 'ssm-command',
    id: COMMENT,
    owner: UID,
    perform: () =>
      runner.sendCommand({
        documentName: 'AWS-RunShellScript',
        instanceIds: ['i-1'],
        parameters: {},
        comment: COMMENT,
        timeoutSeconds: 60,
        maxConcurrency: '1',
        maxErrors: '0',
      }),
    adopt: () => runner.findCommand(COMMENT, ['i-1']),
    settleMs: 30_000,
    earliestAttempt: intentAt,
  });
  const publisher = sns.publisher();
  const publish = (topic: string, earliestAttempt?: number): Effect<string> => ({
    kind: 'sns-publish',
    id: UID,
    owner: UID,
    perform: async () => (await publisher.publish({ topicArn: topic, message: 'm', deduplicationId: UID })).messageId,
    ...(topic.endsWith('.fifo') && { dedupWindowMs: FIFO_DEDUP_WINDOW_MS }),
    ...(earliestAttempt !== undefined && { earliestAttempt }),
  });
  return { clock, expectations, engine, ssm, sns, command, publish };
}

describe('ExecutionEngine', () => {
  test('an effect whose intent this process wrote is performed at once, without asking SSM first', async () => {
    const w = world();
    w.engine.intentWritten(UID, [COMMENT]);
    const d = await w.engine.execute(view, w.command());
    expect(d).toMatchObject({ action: 'performed', result: { commandId: 'cmd-1' } });
    expect(w.ssm.calls).toEqual([`controller ${COMMENT} accepted cmd-1`]);
  });

  test('an effect someone else may have performed is adopted when SSM lists it', async () => {
    const w = world();
    await w.ssm.runner('predecessor').sendCommand({ ...baseInput(), comment: COMMENT });
    const d = await w.engine.execute(view, w.command());
    expect(d).toMatchObject({ action: 'adopted', result: { commandId: 'cmd-1' } });
    expect(w.ssm.commands).toHaveLength(1);
  });

  test('one SSM does not list yet is waited for (settleMs), then sent once', async () => {
    const w = world();
    const first = await w.engine.execute(view, w.command());
    expect(first).toEqual({ action: 'wait', ms: 30_000 });
    w.clock.advance(30_000);
    const second = await w.engine.execute(view, w.command());
    expect(second.action).toBe('performed');
    expect(w.ssm.commands).toHaveLength(1);
  });

  test('a lost answer is healed by adoption, never by a second send', async () => {
    const w = world();
    w.engine.intentWritten(UID, [COMMENT]);
    w.ssm.lostAnswers = 1;
    await expect(w.engine.execute(view, w.command())).rejects.toThrow('answer was lost');
    const d = await w.engine.execute(view, w.command());
    expect(d.action).toBe('adopted');
    expect(w.ssm.commands).toHaveLength(1);
  });

  test('a refusal is final: the effect is never attempted again by this process', async () => {
    const w = world();
    w.engine.intentWritten(UID, [COMMENT]);
    w.ssm.refusals.set(COMMENT, ['AccessDenied']);
    const d = await w.engine.execute(view, { ...w.command(), classify: () => 'refused' });
    expect(d.action).toBe('refused');
    // The refusal was transient at SSM; the engine does not try again.
    const again = await w.engine.execute(view, w.command());
    expect(again.action).toBe('refused');
    expect(w.ssm.commands).toHaveLength(0);
    expect(w.ssm.calls).toHaveLength(1);
  });

  test('throttling sent nothing: an untried intent of ours stays untried and goes out at the next look', async () => {
    const w = world();
    w.engine.intentWritten(UID, [COMMENT]);
    const effect = w.command();
    let calls = 0;
    const d1 = w.engine.execute(view, {
      ...effect,
      perform: () => (calls++ === 0 ? Promise.reject(throttled()) : effect.perform()),
    });
    await expect(d1).rejects.toThrow('Rate exceeded');
    const d2 = await w.engine.execute(view, { ...effect, perform: () => (calls++, effect.perform()) });
    expect(d2.action).toBe('performed');
    expect(w.ssm.calls.filter((c) => c.startsWith('controller'))).toHaveLength(1);
  });

  test('a result learnt from AWS survives a failed status write: it is returned, not sent again', async () => {
    const w = world();
    w.engine.intentWritten(UID, [COMMENT]);
    await w.engine.execute(view, w.command());
    const d = await w.engine.execute(view, w.command());
    expect(d).toMatchObject({ action: 'adopted', result: { commandId: 'cmd-1' } });
    expect(w.engine.known(UID, COMMENT)).toMatchObject({ commandId: 'cmd-1' });
    expect(w.ssm.commands).toHaveLength(1);
  });

  test('a decision on a version older than our last write is refused before anything is asked', async () => {
    const w = world();
    w.engine.intentWritten(UID, [COMMENT]);
    w.expectations.wrote('ns/r', '6', UID);
    await expect(w.engine.execute(view, w.command())).rejects.toBeInstanceOf(StaleViewError);
    expect(w.ssm.calls).toHaveLength(0);
    // The written version is the floor: on it, the effect goes out.
    expect((await w.engine.execute({ ...view, resourceVersion: '6' }, w.command())).action).toBe('performed');
  });

  test('a withheld effect (cancelled before anything was found) is not performed', async () => {
    const w = world();
    w.engine.intentWritten(UID, [COMMENT]);
    const d = await w.engine.execute(view, { ...w.command(), withhold: () => 'AlertResolved' });
    expect(d).toEqual({ action: 'withheld', reason: 'AlertResolved' });
    expect(w.ssm.calls).toHaveLength(0);
  });

  describe('SNS, which cannot be asked', () => {
    const STANDARD = 'arn:aws:sns:eu-west-1:123456789012:t';
    const FIFO = 'arn:aws:sns:eu-west-1:123456789012:t.fifo';

    test('standard topic: a lost answer is never followed by a second Publish (at most once)', async () => {
      const w = world();
      w.engine.intentWritten(UID, [UID]);
      w.sns.lostAnswers = 1;
      await expect(w.engine.execute(view, w.publish(STANDARD))).rejects.toThrow('answer was lost');
      expect(await w.engine.execute(view, w.publish(STANDARD))).toEqual({ action: 'unknown' });
      expect(w.sns.delivered).toHaveLength(1);
      expect(w.sns.calls).toBe(1);
    });

    test('standard topic: an intent this process did not write is not published (a predecessor may have)', async () => {
      const w = world();
      expect(await w.engine.execute(view, w.publish(STANDARD))).toEqual({ action: 'unknown' });
      expect(w.sns.calls).toBe(0);
    });

    test('FIFO topic: a lost answer is repeated with the same deduplication id inside the window; SNS keeps one message', async () => {
      const w = world();
      w.engine.intentWritten(UID, [UID]);
      w.sns.lostAnswers = 1;
      await expect(w.engine.execute(view, w.publish(FIFO))).rejects.toThrow('answer was lost');
      w.clock.advance(60_000);
      const d = await w.engine.execute(view, w.publish(FIFO));
      expect(d).toEqual({ action: 'performed', result: 'msg-1' });
      expect(w.sns.calls).toBe(2);
      expect(w.sns.delivered).toHaveLength(1);
      expect(w.engine.attempts(UID, UID)).toBe(2);
    });

    test('FIFO topic: after the window nothing is repeated', async () => {
      const w = world();
      w.engine.intentWritten(UID, [UID]);
      w.sns.lostAnswers = 1;
      await expect(w.engine.execute(view, w.publish(FIFO))).rejects.toThrow();
      w.clock.advance(FIFO_DEDUP_WINDOW_MS);
      expect(await w.engine.execute(view, w.publish(FIFO))).toEqual({ action: 'unknown' });
      expect(w.sns.calls).toBe(1);
    });

    test("FIFO topic, a predecessor's intent: the window counts from the intent, less a clock-skew margin", async () => {
      const w = world();
      const intent = w.clock.now();
      w.clock.advance(FIFO_DEDUP_WINDOW_MS - 120_000);
      expect((await w.engine.execute(view, w.publish(FIFO, intent))).action).toBe('performed');
      const late = world();
      const at = late.clock.now();
      late.clock.advance(FIFO_DEDUP_WINDOW_MS - 30_000);
      expect(await late.engine.execute(view, late.publish(FIFO, at))).toEqual({ action: 'unknown' });
    });

    test('Publish denied is retried (nothing was published) when the caller classifies it so', async () => {
      const w = world();
      w.engine.intentWritten(UID, [UID]);
      w.sns.refusals.push('AuthorizationError');
      const effect = {
        ...w.publish(STANDARD),
        classify: (e: unknown) => (e instanceof AwsAccessDeniedError ? ('retry' as const) : ('unknown' as const)),
      };
      await expect(w.engine.execute(view, effect)).rejects.toBeInstanceOf(AwsAccessDeniedError);
      expect((await w.engine.execute(view, effect)).action).toBe('performed');
      expect(w.sns.delivered).toHaveLength(1);
    });
  });
});

function baseInput() {
  return {
    documentName: 'AWS-RunShellScript',
    instanceIds: ['i-1'],
    parameters: {},
    timeoutSeconds: 60,
    maxConcurrency: '1',
    maxErrors: '0',
  };
}
