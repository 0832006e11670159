/**
 * The rollout's rules (src/controllers/rollout.ts) with the real cloud layer
 * (SsmCommandRunner, CloudWatchAlarmReader) against the test bed, through the contract
 * gateway with SSM simulated over time (test/testbed/ssm-simulation.ts): every number
 * below is the emulator's view of the invocations, not the sender's.
 *
 * `roll` is a small driver standing in for the execution engine (which will own the
 * send path, issue 20): it asks `nextSend` what may go out, sends it, and polls. What it
 * proves is that the rules, the SDK calls they lead to and SSM's documented per-command
 * semantics together hold the fleet-wide limits; the controller's e2e (rollout.test.ts)
 * will prove the same through the engine.
 */
import { CloudWatchClient, PutMetricAlarmCommand, SetAlarmStateCommand } from '@aws-sdk/client-cloudwatch';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { SsmCommand } from '../../src/api/v1alpha1/index.js';
import { CloudWatchAlarmReader } from '../../src/cloud/cloudwatch.js';
import { SsmCommandRunner } from '../../src/cloud/ssm.js';
import { alarmConfiguration, alarmVerdict, nextSend, outcome, plannedRolloutCommands, waveEnded } from '../../src/controllers/rollout.js';
import { seedClientConfig, seedInstances } from '../testbed/aws.js';
import {
  assertNoContractViolations,
  clearSsmSimulation,
  expectContractViolation,
  setSsmSimulation,
  ssmTimeline,
} from '../testbed/gateway.js';
import { testbedFromEnv } from './harness.js';

const tb = testbedFromEnv();
/** A region of this file's own: moto adds every instance of a region to a command sent by InstanceIds. */
const REGION = 'eu-central-1';
const RUN_MS = 400;
let ssm: SSMClient;
let cw: CloudWatchClient;
let runner: SsmCommandRunner;
let fleet: string[];

beforeAll(async () => {
  const cfg = { ...seedClientConfig(tb.motoEndpoint, REGION), maxAttempts: 1 };
  ssm = new SSMClient(cfg);
  cw = new CloudWatchClient(cfg);
  runner = new SsmCommandRunner(ssm, ssm);
  fleet = await seedInstances(tb.motoEndpoint, { count: 120, region: REGION, tags: { Name: 'rollout' } });
});

afterEach(() => clearSsmSimulation(tb.motoEndpoint, REGION));

afterAll(async () => {
  ssm?.destroy();
  cw?.destroy();
  await assertNoContractViolations(tb.motoEndpoint, { region: REGION });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends and follows `commands` wave by wave as nextSend allows; returns the statuses seen and why it stopped. */
async function roll(
  commands: SsmCommand[],
  fleetLimits: { maxConcurrency: string; maxErrors: string },
  opts: { alarm?: string; beforeWave?: (wave: number) => Promise<boolean> } = {},
): Promise<{ statuses: Map<string, string>; stopped?: string }> {
  const statuses = new Map<string, string>();
  const targets = commands.reduce((n, c) => n + c.instanceIds.length, 0);
  const waves = Math.max(...commands.map((c) => c.wave ?? 0)) + 1;
  const poll = async () => {
    for (const c of commands) {
      if (!c.commandId) continue;
      for (const id of c.instanceIds) {
        const s = statuses.get(id);
        if (s && ['Success', 'Failed', 'Cancelled', 'TimedOut'].includes(s)) continue;
        statuses.set(id, (await runner.getInvocation(c.commandId, id)).status);
      }
    }
  };
  for (let wave = 0; wave < waves; wave++) {
    if (opts.beforeWave && !(await opts.beforeWave(wave))) return { statuses, stopped: `before wave ${wave + 1}` };
    for (;;) {
      await poll();
      const d = nextSend(commands, statuses, wave, { ...fleetLimits, targets });
      if (d.kind === 'stop') {
        for (const c of commands) for (const id of c.instanceIds) if (!c.commandId) statuses.set(id, 'NotSent');
        // What was sent runs to its end (SSM stops each command at its own MaxErrors).
        while (
          !commands.every(
            (c) => !c.commandId || c.instanceIds.every((id) => statuses.get(id) !== 'InProgress' && statuses.get(id) !== 'Pending'),
          )
        ) {
          await sleep(100);
          await poll();
        }
        return { statuses, stopped: `maxErrors: ${d.failed} failed, ${d.allowed} allowed` };
      }
      if (d.kind === 'send') {
        const c = commands[d.index]!;
        const alarm = opts.alarm ? alarmConfiguration({ waves: [], alarms: [opts.alarm] }) : undefined;
        const sent = await runner.sendCommand({
          documentName: 'AWS-RunShellScript',
          instanceIds: c.instanceIds,
          parameters: { commands: ['true'] },
          comment: c.comment,
          timeoutSeconds: 600,
          maxConcurrency: d.maxConcurrency,
          maxErrors: d.maxErrors,
          ...(alarm && { alarm: { name: alarm.alarmName, ignorePollAlarmFailure: alarm.ignorePollAlarmFailure } }),
        });
        c.commandId = sent.commandId;
        c.maxConcurrency = d.maxConcurrency;
        c.maxErrors = d.maxErrors;
        continue;
      }
      if (d.kind === 'waveSent' && waveEnded(commands, statuses, wave)) break;
      await sleep(50);
    }
  }
  return { statuses };
}

describe('fleet-wide rate control, from the emulator view', () => {
  it('120 instances with maxConcurrency 10 never run more than 10 at once (and do run 10)', async () => {
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: RUN_MS, spreadMs: 200 });
    const commands = plannedRolloutCommands('remediator:c10', fleet, [120], '10');
    expect(commands.map((c) => c.instanceIds.length)).toEqual([50, 50, 20]);
    const { statuses, stopped } = await roll(commands, { maxConcurrency: '10', maxErrors: '0' });
    expect(stopped).toBeUndefined();
    const tl = await ssmTimeline(tb.motoEndpoint, REGION);
    expect(tl.commands).toHaveLength(3);
    expect(tl.maxRunning).toBe(10);
    expect([...statuses.values()].every((s) => s === 'Success')).toBe(true);
    expect(outcome(commands, statuses, { maxErrors: '0', targets: 120 }).phase).toBe('Succeeded');
  }, 90_000);

  it('the per-chunk pass-through of before this change ran 30 at once (what the fleet-wide rule prevents)', async () => {
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: RUN_MS, spreadMs: 200 });
    // Three commands of 50/50/20 sent back to back, each with MaxConcurrency 10, as the controller did.
    for (const [i, chunk] of [fleet.slice(0, 50), fleet.slice(50, 100), fleet.slice(100)].entries()) {
      await runner.sendCommand({
        documentName: 'AWS-RunShellScript',
        instanceIds: chunk,
        parameters: { commands: ['true'] },
        comment: `remediator:old/${i}`,
        timeoutSeconds: 600,
        maxConcurrency: '10',
        maxErrors: '1',
      });
    }
    expect((await ssmTimeline(tb.motoEndpoint, REGION)).maxRunning).toBe(30);
  });

  it('maxErrors 2: the third failure stops the rollout, the rest unsent; the request fails', async () => {
    // One failure in the first command; in the second, one per batch of 10 (60, then 75, then 90).
    const failing = [fleet[3]!, fleet[60]!, fleet[75]!, fleet[90]!];
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: 150, spreadMs: 0, failing });
    const commands = plannedRolloutCommands('remediator:e2', fleet, [120], '10');
    const { statuses, stopped } = await roll(commands, { maxConcurrency: '10', maxErrors: '2' });
    expect(stopped).toMatch(/maxErrors: 3 failed, 2 allowed/);
    const tl = await ssmTimeline(tb.motoEndpoint, REGION);
    // The second command went out with what was left of the budget (2 - 1 = 1), and SSM stopped it at its
    // second failure: fleet[90] and the rest of its batch never started.
    expect(tl.commands.map((c) => c.maxErrors)).toEqual(['2', '1']);
    expect(statuses.get(fleet[90]!)).toBe('Cancelled');
    expect(commands[2]!.commandId).toBeUndefined();
    expect(commands[2]!.instanceIds.every((id) => statuses.get(id) === 'NotSent')).toBe(true);
    const o = outcome(commands, statuses, { maxErrors: '2', targets: 120 });
    expect(o.phase).toBe('Failed');
    expect(o.failedInstances).toEqual([fleet[3], fleet[60], fleet[75]]);
  }, 90_000);

  it('within the budget the rollout succeeds and names the failed instances', async () => {
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: 100, spreadMs: 0, failing: [fleet[7]!, fleet[99]!] });
    const commands = plannedRolloutCommands('remediator:ok2', fleet, [120], '50');
    const { statuses, stopped } = await roll(commands, { maxConcurrency: '50', maxErrors: '2' });
    expect(stopped).toBeUndefined();
    const o = outcome(commands, statuses, { maxErrors: '2', targets: 120 });
    expect(o).toMatchObject({ phase: 'Succeeded', failedInstances: [fleet[7], fleet[99]] });
  }, 90_000);
});

describe('CancelCommand (emulated in the gateway) and AlarmConfiguration', () => {
  it('cancels what has not ended; ended invocations keep their status; a second cancel changes nothing', async () => {
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: 300, spreadMs: 0, cancellingMs: 1500 });
    const sent = await runner.sendCommand({
      documentName: 'AWS-RunShellScript',
      instanceIds: fleet.slice(0, 6),
      parameters: { commands: ['true'] },
      comment: 'remediator:cancel',
      timeoutSeconds: 600,
      maxConcurrency: '2',
      maxErrors: '0',
    });
    await sleep(450); // the first two ended at 300, the next two run 300..600
    await runner.cancelCommand(sent.commandId);
    await runner.cancelCommand(sent.commandId);
    const now = await Promise.all(fleet.slice(0, 6).map((id) => runner.getInvocation(sent.commandId, id)));
    expect(now.map((r) => r.status)).toEqual(['Success', 'Success', 'Cancelling', 'Cancelling', 'Cancelled', 'Cancelled']);
    await sleep(1600);
    const later = await Promise.all(fleet.slice(2, 4).map((id) => runner.getInvocation(sent.commandId, id)));
    expect(later.map((r) => r.status)).toEqual(['Cancelled', 'Cancelled']);
  });

  it("without a simulation, cancelling moto's command (every invocation already Success) changes nothing", async () => {
    const sent = await runner.sendCommand({
      documentName: 'AWS-RunShellScript',
      instanceIds: fleet.slice(0, 1),
      parameters: { commands: ['true'] },
      comment: 'remediator:cancel-moto',
      timeoutSeconds: 600,
      maxConcurrency: '1',
      maxErrors: '0',
    });
    await runner.cancelCommand(sent.commandId, fleet.slice(0, 1));
    expect((await runner.getInvocation(sent.commandId, fleet[0]!)).status).toBe('Success');
  });

  it('an unknown command id is InvalidCommandId, as SSM answers', async () => {
    const err = await runner.cancelCommand('00000000-0000-0000-0000-000000000000').catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe('InvalidCommandId');
  });

  it('AlarmConfiguration reaches SSM in the documented shape; a second alarm is refused as AWS would', async () => {
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: 50 });
    const sent = await runner.sendCommand({
      documentName: 'AWS-RunShellScript',
      instanceIds: fleet.slice(0, 1),
      parameters: { commands: ['true'] },
      comment: 'remediator:alarm',
      timeoutSeconds: 600,
      maxConcurrency: '1',
      maxErrors: '0',
      alarm: { name: 'fleet-5xx', ignorePollAlarmFailure: false },
    });
    const tl = await ssmTimeline(tb.motoEndpoint, REGION);
    expect(tl.commands.find((c) => c.commandId === sent.commandId)?.alarm).toEqual({ name: 'fleet-5xx', ignorePollAlarmFailure: false });
    const expected = await expectContractViolation(tb.motoEndpoint, { operation: 'SendCommand', region: REGION });
    const { SendCommandCommand } = await import('@aws-sdk/client-ssm');
    const err = await ssm
      .send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: fleet.slice(0, 1),
          Parameters: { commands: ['true'] },
          AlarmConfiguration: { Alarms: [{ Name: 'a' }, { Name: 'b' }] },
        }),
      )
      .catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe('ValidationException');
    expect(await expected.settle()).toHaveLength(1);
  });

  it('an alarm set to ALARM (SetAlarmState) before a wave stops the rollout: that wave is never sent', async () => {
    await cw.send(
      new PutMetricAlarmCommand({
        AlarmName: 'rollout-5xx',
        MetricName: 'HTTPCode_Target_5XX_Count',
        Namespace: 'AWS/ApplicationELB',
        Statistic: 'Sum',
        Period: 60,
        EvaluationPeriods: 1,
        Threshold: 10,
        ComparisonOperator: 'GreaterThanThreshold',
      }),
    );
    const alarms = new CloudWatchAlarmReader(cw);
    const before = await alarms.alarmStates(['rollout-5xx', 'no-such-alarm']);
    expect(before.get('rollout-5xx')).not.toBe('ALARM');
    expect(before.has('no-such-alarm')).toBe(false);
    await setSsmSimulation(tb.motoEndpoint, REGION, { runMs: 100, spreadMs: 0 });
    const commands = plannedRolloutCommands('remediator:alarm-waves', fleet.slice(0, 21), [1, 10, 10], '10');
    const { statuses, stopped } = await roll(
      commands,
      { maxConcurrency: '10', maxErrors: '0' },
      {
        alarm: 'rollout-5xx',
        beforeWave: async (wave) => {
          if (wave === 1) {
            await cw.send(new SetAlarmStateCommand({ AlarmName: 'rollout-5xx', StateValue: 'ALARM', StateReason: 'test: 5xx up' }));
          }
          const states = await alarms.alarmStates(['rollout-5xx']);
          return !alarmVerdict(['rollout-5xx'], states, false).abort;
        },
      },
    );
    expect(stopped).toBe('before wave 2');
    expect(commands[0]!.commandId).toBeDefined();
    expect(commands.slice(1).every((c) => c.commandId === undefined)).toBe(true);
    expect(statuses.get(fleet[0]!)).toBe('Success');
    expect((await ssmTimeline(tb.motoEndpoint, REGION)).commands).toHaveLength(1);
  }, 60_000);
});
