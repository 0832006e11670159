/**
 * The senders users run — Grafana alerting, Datadog, PagerDuty v3 — through the real
 * controller process and its intake, against the real kube-apiserver and the AWS
 * emulator: each one's firing payload creates a request that waits for approval, and
 * its recovery (Grafana `resolved`, Datadog `Recovered`, PagerDuty `incident.resolved`)
 * cancels it. A policy can pick a sender by its `remediator_sender` label; events that
 * neither fire nor resolve (Datadog `Warn`, PagerDuty `incident.acknowledged`) create
 * nothing. Payloads come from intake-fixtures.ts, shaped after each sender's docs.
 */
import type { RemediationRequest } from '../../src/api/v1alpha1/index.js';
import { seedInstances } from '../testbed/aws.js';
import { Resources, testbedFromEnv } from './harness.js';
import { datadogWebhook, grafanaWebhook, pagerDutyWebhook } from './intake-fixtures.js';
import {
  listRequests,
  postJson,
  setUpIntakeNamespaces,
  startIntakeController,
  type IntakeController,
  type IntakeNamespaces,
} from './intake-harness.js';

const REGION = 'us-west-1';
const NS = 'intake-senders';

describe('alert senders users run: fire, then recover', () => {
  const tb = testbedFromEnv();
  const admin = tb.admin();
  const res = new Resources(admin);
  let ns: IntakeNamespaces;
  let intake: IntakeController;
  let instance: string;

  const ssm = { ssm: { parameters: [{ name: 'commands', values: ['systemctl restart nginx'] }] } };
  const created = (answer: { json: Record<string, unknown> | undefined }) => (answer.json?.created ?? []) as string[];
  const nameOf = (ref: string) => ref.split('/')[1]!;

  async function fireThenResolve(path: string, fire: unknown, resolve: unknown): Promise<RemediationRequest> {
    const first = await postJson(intake.url, path, fire, ns.token);
    expect(first.status).toBe(200);
    expect(created(first)).toHaveLength(1);
    const name = nameOf(created(first)[0]!);
    // Re-sent as senders do: deduplicated, nothing new.
    expect((await postJson(intake.url, path, fire, ns.token)).json).toMatchObject({ created: [], existing: [`${NS}/${name}`] });
    await res.waitForPhase(NS, name, 'AwaitingApproval', 30_000);
    const second = await postJson(intake.url, path, resolve, ns.token);
    expect(second.status).toBe(200);
    expect(second.json).toMatchObject({ alerts: 1, created: [], cancelled: [`${NS}/${name}`] });
    const rr = await res.waitForPhase(NS, name, 'Cancelled', 30_000);
    expect(rr.spec.alert.status).toBe('resolved');
    expect(rr.status?.reason).toBe('AlertResolved');
    return rr;
  }

  beforeAll(async () => {
    ns = await setUpIntakeNamespaces(admin, [NS]);
    instance = (await seedInstances(tb.motoEndpoint, { region: REGION, tags: { Name: 'web-1', Service: 'nginx' } }))[0]!;
    // Medium risk waits for a person, so a request is still cancellable when the recovery arrives.
    for (const sender of ['grafana', 'datadog']) {
      await res.createPolicy(NS, `restart-from-${sender}`, {
        match: { labels: [{ name: 'remediator_sender', op: '=', value: sender }] },
        targets: { fromLabels: ['instance_id'] },
        risk: 'Medium',
        action: ssm,
      });
    }
    // PagerDuty incidents carry no instance id: this policy targets by tag.
    await res.createPolicy(NS, 'restart-from-pagerduty', {
      match: {
        labels: [
          { name: 'remediator_sender', op: '=', value: 'pagerduty' },
          { name: 'service', op: '=~', value: 'web-.*' },
        ],
      },
      targets: { tagSelector: { Service: 'nginx' } },
      risk: 'Medium',
      action: ssm,
    });
    intake = await startIntakeController(tb, ns, { region: REGION });
  });

  afterAll(async () => {
    await intake?.stop();
    await ns?.cleanup();
  });

  test('Grafana alerting webhook contact point: firing, then resolved', async () => {
    const rr = await fireThenResolve(
      '/v1/alerts/grafana',
      grafanaWebhook({ status: 'firing', instanceId: instance, fingerprint: 'c6eadffa33fcdf37' }),
      grafanaWebhook({ status: 'resolved', instanceId: instance, fingerprint: 'c6eadffa33fcdf37' }),
    );
    expect(rr.spec.policyRef.name).toBe('restart-from-grafana');
    expect(rr.spec.alert).toMatchObject({ source: 'generic', name: 'High memory usage', fingerprint: 'grafana:c6eadffa33fcdf37' });
  });

  test('Datadog webhook: Triggered, then Recovered; Warn creates nothing', async () => {
    const at = Date.parse('2025-10-12T09:30:00Z');
    const dd = (transition: string, dateMs: number) =>
      datadogWebhook({ transition, instanceId: instance, monitorId: '12345678', cycleKey: '7473469394128093417', dateMs });
    const before = (await listRequests(admin, NS)).length;
    const warn = await postJson(intake.url, '/v1/alerts/datadog', dd('Warn', at), ns.token);
    expect(warn.json).toMatchObject({ alerts: 0, ignored: expect.stringContaining('Warn') });
    expect((await listRequests(admin, NS)).length).toBe(before);
    const rr = await fireThenResolve('/v1/alerts/datadog', dd('Triggered', at), dd('Recovered', at + 15 * 60_000));
    expect(rr.spec.policyRef.name).toBe('restart-from-datadog');
    expect(rr.spec.alert.labels).toMatchObject({ env: 'prod', instance_id: instance, remediator_sender: 'datadog' });
  });

  test('PagerDuty v3 webhook: incident.triggered, then incident.resolved; acknowledged creates nothing', async () => {
    const pd = (eventType: string, occurredAt: string) =>
      pagerDutyWebhook({ eventType, incidentId: 'PGR0VU2', createdAt: '2025-10-12T09:30:00Z', occurredAt });
    const ack = await postJson(intake.url, '/v1/alerts/pagerduty', pd('incident.acknowledged', '2025-10-12T09:31:00Z'), ns.token);
    expect(ack.json).toMatchObject({ alerts: 0 });
    const rr = await fireThenResolve(
      '/v1/alerts/pagerduty',
      pd('incident.triggered', '2025-10-12T09:30:01Z'),
      pd('incident.resolved', '2025-10-12T09:50:00Z'),
    );
    expect(rr.spec.policyRef.name).toBe('restart-from-pagerduty');
    expect(rr.spec.alert.labels).toMatchObject({ service: 'web-frontend', pagerduty_incident_id: 'PGR0VU2' });
  });

  test('the sender endpoints need the bearer token', async () => {
    for (const path of ['/v1/alerts/grafana', '/v1/alerts/datadog', '/v1/alerts/pagerduty']) {
      expect((await postJson(intake.url, path, {}, undefined)).status).toBe(401);
      expect((await postJson(intake.url, path, {}, 'wrong-token-wrong-token')).status).toBe(401);
    }
  });
});
