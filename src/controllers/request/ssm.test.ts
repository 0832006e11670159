import pino from 'pino';
import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import type { CommandRunner, SendCommandInput } from '../../cloud/types.js';
import type { CloudServices } from '../../cloud/clients.js';
import type { RemediationRequestReconcilerDeps } from './deps.js';
import { WriteExpectations } from '../../runtime/expectations.js';
import { ExecutionEngine } from './engine.js';
import { plannedCommands, SsmExecution, tailBudget } from './ssm.js';
import { Transitions } from './transition.js';

const UID = '0b9f3c2e-8d1a-4c7e-9f00-123456789abc';
const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${i.toString(16).padStart(17, '0')}`);

describe('plannedCommands', () => {
  test('up to 50 targets are one command with the comment requests always had', () => {
    expect(plannedCommands(UID, ids(50))).toEqual([{ comment: `remediator:${UID}`, instanceIds: ids(50) }]);
  });

  test('more go out as commands of at most 50, in order, each with its own comment within 100 characters', () => {
    const targets = ids(120);
    const commands = plannedCommands(UID, targets);
    expect(commands.map((c) => c.instanceIds.length)).toEqual([50, 50, 20]);
    expect(commands.map((c) => c.comment)).toEqual([0, 1, 2].map((i) => `remediator:${UID}/${i}`));
    expect(commands.flatMap((c) => c.instanceIds)).toEqual(targets);
    expect(Math.max(...plannedCommands(UID, ids(500)).map((c) => c.comment.length))).toBeLessThanOrEqual(100);
    expect(plannedCommands(UID, ids(500))).toHaveLength(10);
  });
});

describe('tailBudget', () => {
  test('keeps the full 2 KB tails for ordinary requests and shrinks them for the largest fleets', () => {
    expect(tailBudget(1)).toBe(2048);
    expect(tailBudget(120)).toBe(2048);
    expect(tailBudget(500)).toBe(960);
    // stdout and stderr of 500 instances stay far below etcd's 1.5 MiB object limit.
    expect(2 * 500 * tailBudget(500)).toBeLessThan(1_000_000);
  });
});

describe('SsmExecution on requests it did not start', () => {
  const now = Date.parse('2030-01-01T00:10:00Z');
  const clock = { now: () => now };
  const log = pino({ level: 'silent' });
  const target = 'i-0123456789abcdef0';

  function world(found: { commandId: string } | undefined) {
    const sent: SendCommandInput[] = [];
    const polled: string[] = [];
    const commands: CommandRunner = {
      sendCommand: async (input) => (sent.push(input), { commandId: 'new' }),
      findCommand: async () => found,
      getInvocation: async (commandId, instanceId) => (polled.push(commandId), { instanceId, status: 'Success', responseCode: 0 }),
    };
    const cloud = { commands } as unknown as CloudServices;
    const engine = new ExecutionEngine(clock, new WriteExpectations(clock));
    const exec = new SsmExecution(
      { clock, sendSettleMs: 1_000 } as unknown as RemediationRequestReconcilerDeps,
      new Transitions(clock),
      engine,
    );
    return { exec, cloud, sent, polled };
  }

  function request(ssm: Record<string, unknown>, alert: 'firing' | 'resolved' = 'firing'): RemediationRequest {
    return {
      metadata: { name: 'r', namespace: 'ns', uid: UID, generation: 1 },
      spec: { policyRef: { name: 'p' }, alert: { source: 'generic', name: 'Down', status: alert } },
      status: {
        phase: 'Executing',
        targets: [target],
        plan: {
          digest: `sha256:${'0'.repeat(64)}`,
          runbook: { name: 'rb', generation: 1 },
          policyGeneration: 1,
          risk: 'Low',
          targets: [target],
          region: 'us-east-1',
          ssm: {
            documentName: 'AWS-RunShellScript',
            parameters: { commands: ['true'] },
            timeoutSeconds: 600,
            maxConcurrency: '50',
            maxErrors: '0',
          },
        },
        execution: {
          ssm: { documentName: 'AWS-RunShellScript', comment: `remediator:${UID}`, intentRecordedAt: '2030-01-01T00:00:00Z', ...ssm },
        },
      },
    } as RemediationRequest;
  }

  test('a request recorded before `commands` existed is followed through its single command id', async () => {
    const { exec, cloud, sent, polled } = world(undefined);
    const rr = request({ commandId: 'legacy', requestedAt: '2030-01-01T00:00:01Z' });
    const t = await exec.step(rr, structuredClone(rr.status!), cloud, log);
    expect(sent).toHaveLength(0);
    expect(polled).toEqual(['legacy']);
    expect(t.status.phase).toBe('Succeeded');
    expect(t.status.execution?.ssm?.commands).toEqual([
      { comment: `remediator:${UID}`, instanceIds: [target], commandId: 'legacy', requestedAt: '2030-01-01T00:00:01Z' },
    ]);
  });

  test('a legacy request without a command id adopts the command SSM lists under its comment', async () => {
    const { exec, cloud, sent } = world({ commandId: 'found' });
    const rr = request({});
    const t = await exec.step(rr, structuredClone(rr.status!), cloud, log);
    expect(sent).toHaveLength(0);
    expect(t.status.execution?.ssm?.commandId).toBe('found');
    expect(t.mustPersist).toMatchObject({ comment: `remediator:${UID}`, commandId: 'found' });
  });

  test('a resolved alert cancels a request that has sent nothing (SSM lists nothing after the settle time)', async () => {
    const { exec, cloud, sent } = world(undefined);
    const rr = request({ commands: [{ comment: `remediator:${UID}`, instanceIds: [target] }] }, 'resolved');
    const t = await exec.step(rr, structuredClone(rr.status!), cloud, log);
    expect(sent).toHaveLength(0);
    expect(t.status.phase).toBe('Cancelled');
  });
});
