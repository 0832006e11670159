/**
 * The walking skeleton, end to end against the real kube-apiserver and moto: an
 * administrator's Runbook, a team's auto-approved policy using it, and a request applied
 * through the API are enriched from EC2,
 * executed through SSM SendCommand with IRSA credentials, polled to an end, and
 * recorded in status with an Event per transition.
 */
import { seedInstances } from '../testbed/aws.js';
import { Resources, restartRunbook, ssmCommands, startController, testbedFromEnv, waitFor, type RunningController } from './harness.js';

const REGION = 'ca-west-1';
const NS = 'skeleton';
const RUNBOOK = 'restart-service-skeleton';

describe('walking skeleton', () => {
  const tb = testbedFromEnv();
  const res = new Resources(tb.admin());
  let controller: RunningController;

  beforeAll(async () => {
    await res.namespace(NS);
    controller = await startController(tb, { region: REGION, namespace: NS });
  });

  afterAll(async () => {
    await controller?.stop();
    await res.deleteRunbook(RUNBOOK);
  });

  test('an auto-approved request is enriched, executed through SSM and recorded', async () => {
    const [instance] = await seedInstances(tb.motoEndpoint, {
      region: REGION,
      tags: { Name: 'web-1', Environment: 'prod', Service: 'nginx' },
    });
    await res.createRunbook(
      RUNBOOK,
      restartRunbook({
        inputs: [{ name: 'service', allowedPattern: 'nginx|php-fpm' }],
        scope: { tagSelector: { Environment: 'prod' }, maxTargets: 5 },
        action: {
          ssm: {
            documentName: 'AWS-RunShellScript',
            parameters: [{ name: 'commands', values: ['systemctl restart {{ inputs.service }}'] }],
            timeoutSeconds: 600,
            maxConcurrency: '50',
            maxErrors: '0',
          },
        },
      }),
    );
    await res.createPolicy(NS, 'restart-nginx', {
      runbookRef: { name: RUNBOOK },
      inputs: { service: '{{ labels.service }}' },
      targets: { fromLabels: ['instance_id'], maxTargets: 5 },
      risk: 'Low',
    });
    const created = await res.createRequest(NS, 'nginx-down-1', {
      policyRef: { name: 'restart-nginx' },
      alert: { source: 'alertmanager', name: 'NginxDown', status: 'firing', labels: { instance_id: instance!, service: 'nginx' } },
    });

    const rr = await res.waitForPhase(NS, 'nginx-down-1', 'Succeeded');

    // What moto received: exactly one command, tagged with the request's UID.
    const mine = (await ssmCommands(tb, REGION)).filter((c) => c.Comment === `remediator:${created.metadata?.uid}`);
    expect(mine).toHaveLength(1);
    const command = mine[0]!;
    expect(command.DocumentName).toBe('AWS-RunShellScript');
    expect(command.InstanceIds).toContain(instance);
    expect(command.Parameters?.commands).toEqual(['systemctl restart nginx']);
    expect(command).toMatchObject({ MaxConcurrency: '50', MaxErrors: '0', TimeoutSeconds: 600 });

    // What status records.
    const s = rr.status!;
    expect(s.risk).toBe('Low');
    expect(s.targets).toEqual([instance]);
    expect(s.targetCount).toBe(1);
    expect(s.plan).toMatchObject({
      runbook: { name: RUNBOOK, generation: 1 },
      policyGeneration: 1,
      risk: 'Low',
      targets: [instance],
      region: REGION,
    });
    expect(s.plan?.ssm?.parameters).toEqual({ commands: ['systemctl restart nginx'] });
    expect(s.plan?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(s.enrichment?.instances).toHaveLength(1);
    expect(s.enrichment?.instances[0]).toMatchObject({
      instanceId: instance,
      state: 'running',
      tags: { Environment: 'prod', Service: 'nginx', Name: 'web-1' },
    });
    expect(s.execution?.ssm?.commandId).toBe(command.CommandId);
    expect(s.execution?.ssm?.invocations).toEqual([expect.objectContaining({ instanceId: instance, status: 'Success' })]);
    expect(s.startTime).toBeDefined();
    expect(s.completionTime).toBeDefined();
    const conditions = Object.fromEntries((s.conditions ?? []).map((c) => [c.type, c.status]));
    expect(conditions).toEqual({ Enriched: 'True', Approved: 'True', Executed: 'True', Ready: 'True' });
    expect(s.conditions?.find((c) => c.type === 'Approved')?.reason).toBe('AutoApproved');

    // Events recorded off the reconcile's path (so wait for the last). Planning, auto
    // approval, the intent and the send are one reconcile, and a command that finished by
    // the first poll is written (and told) once, with its end: one Event naming the command.
    const events = await waitFor('the Events', async () => {
      const r = await res.events(NS, 'nginx-down-1');
      return r.some((e) => e.reason === 'CommandSucceeded') ? r : undefined;
    });
    expect(events.map((e) => e.reason)).toEqual(['CommandSucceeded']);
    expect(events[0]?.message).toContain(command.CommandId);

    // The policy's status counts it.
    const policy = await waitFor('policy counters', async () => {
      const p = await res.getPolicy(NS, 'restart-nginx');
      return p.status?.succeeded === 1 ? p : undefined;
    });
    expect(policy.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(policy.status).toMatchObject({
      observedGeneration: 1,
      matched: 1,
      executed: 1,
      succeeded: 1,
      failed: 0,
      skipped: 0,
      lastTriggerTime: created.metadata?.creationTimestamp,
    });
  });
});
