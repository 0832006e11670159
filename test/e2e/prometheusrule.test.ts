/**
 * The chart's PrometheusRule (templates/prometheusrule.yaml), rendered by the pinned
 * helm and tested with the real promtool: `promtool check rules` accepts it, and
 * `promtool test rules` shows each alert firing on the series the controller exports
 * (as the chart's ServiceMonitor scrapes them) and staying quiet otherwise. Every
 * metric the rules read must be one the controller registers.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { IntakeMetrics } from '../../src/intake/metrics.js';
import { Metrics } from '../../src/observability/metrics.js';
import { parseManifests, renderChart } from '../../hack/chart/render.js';
import { EXTRA_TOOLS_BUILD_TIMEOUT_MS, ensureExtraTools } from '../testbed/extra-tools.js';
import { testbedFromEnv } from './harness.js';

const run = promisify(execFile);
const tb = testbedFromEnv();

interface RuleGroup {
  name: string;
  rules: Array<{ alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }>;
}

async function renderRules(values: Record<string, unknown> = {}): Promise<RuleGroup[]> {
  const text = await renderChart({
    helm: tb.binaries.helm,
    release: 'remediator',
    namespace: 'remediator-system',
    values: { metrics: { prometheusRule: { enabled: true, ...values } } },
  });
  const rule = parseManifests(text).find((o) => o.kind === 'PrometheusRule');
  if (!rule) throw new Error('no PrometheusRule rendered');
  return (rule['spec'] as { groups: RuleGroup[] }).groups;
}

// As the chart's ServiceMonitor scrapes them: target labels namespace and job; the
// metric's own namespace label renamed exported_namespace.
const T = 'namespace="remediator-system",job="remediator"';
const series = (name: string, labels: string, values: string) => ({ series: `${name}{${T}${labels ? `,${labels}` : ''}}`, values });
const target = { namespace: 'remediator-system', job: 'remediator' };

const tests = [
  {
    name: 'circuit breaker',
    interval: '1m',
    input_series: [
      series('remediator_alertpolicy_circuit_open', 'exported_namespace="web",policy="restart-nginx"', '0 0 1x10'),
      series('remediator_alertpolicy_circuit_open', 'exported_namespace="db",policy="vacuum"', '0x12'),
      // Another release's policy with the same name: not ours.
      {
        series: 'remediator_alertpolicy_circuit_open{namespace="other",job="remediator",exported_namespace="web",policy="x"}',
        values: '1x12',
      },
    ],
    alert_rule_test: [
      { eval_time: '2m', alertname: 'RemediatorCircuitBreakerOpen', exp_alerts: [] },
      {
        eval_time: '5m',
        alertname: 'RemediatorCircuitBreakerOpen',
        exp_alerts: [
          {
            exp_labels: { severity: 'warning', team: 'platform', exported_namespace: 'web', policy: 'restart-nginx' },
            exp_annotations: {
              summary: 'AlertPolicy web/restart-nginx stopped executing: its circuit breaker is open',
              description:
                "Consecutive executions failed. Read why in the policy's status and the failed RemediationRequests, " +
                'fix the cause, then resume it: kubectl remediator resume -n web restart-nginx',
            },
          },
        ],
      },
    ],
  },
  {
    name: 'access denied',
    interval: '1m',
    input_series: [
      series('remediator_aws_api_calls_total', 'service="ssm",operation="SendCommand",outcome="access_denied"', '0x10 1 2x20'),
      series('remediator_aws_api_calls_total', 'service="ec2",operation="DescribeInstances",outcome="success"', '0+5x32'),
    ],
    alert_rule_test: [
      { eval_time: '5m', alertname: 'RemediatorAWSAccessDenied', exp_alerts: [] },
      {
        eval_time: '13m',
        alertname: 'RemediatorAWSAccessDenied',
        exp_alerts: [
          {
            exp_labels: { severity: 'critical', team: 'platform', service: 'ssm', operation: 'SendCommand' },
            exp_annotations: {
              summary: 'AWS denied ssm:SendCommand to the remediator controller',
              description:
                "The controller's IAM role lacks ssm:SendCommand (or a condition on it, such as the managed tag, fails). " +
                'Compare the role with config/iam/policy.json; blocked requests wait with CloudAccess=False.',
            },
          },
        ],
      },
      // Ten quiet minutes later it resolves.
      { eval_time: '25m', alertname: 'RemediatorAWSAccessDenied', exp_alerts: [] },
    ],
  },
  {
    name: 'reconcile errors',
    interval: '1m',
    input_series: [
      series('controller_runtime_reconcile_total', 'controller="remediationrequest",result="success"', '0+10x60'),
      series('controller_runtime_reconcile_errors_total', 'controller="remediationrequest"', '0x10 5+5x50'),
      series('controller_runtime_reconcile_total', 'controller="alertpolicy",result="success"', '0+10x60'),
      series('controller_runtime_reconcile_errors_total', 'controller="alertpolicy"', '0x60'),
    ],
    alert_rule_test: [
      // Above 10% from minute 11, but only 15 minutes later is it an alert.
      { eval_time: '20m', alertname: 'RemediatorReconcileErrors', exp_alerts: [] },
      {
        eval_time: '40m',
        alertname: 'RemediatorReconcileErrors',
        exp_alerts: [
          {
            exp_labels: { severity: 'warning', team: 'platform', controller: 'remediationrequest' },
            exp_annotations: {
              summary: 'More than 10% of remediationrequest reconciles fail',
              description:
                "50% of the remediationrequest controller's reconciles returned an error over 5 minutes, for 15 minutes. " +
                "The controller's logs (level error) say why.",
            },
          },
        ],
      },
    ],
  },
  {
    name: 'intake server errors',
    interval: '1m',
    input_series: [
      series('remediator_intake_requests_total', 'source="alertmanager",outcome="ok"', '0+90x40'),
      series('remediator_intake_requests_total', 'source="alertmanager",outcome="unavailable"', '0x5 10+10x35'),
      // Client errors are the sender's problem, not ours.
      series('remediator_intake_requests_total', 'source="generic",outcome="unauthorized"', '0x40'),
    ],
    alert_rule_test: [
      { eval_time: '10m', alertname: 'RemediatorIntakeErrors', exp_alerts: [] },
      {
        eval_time: '30m',
        alertname: 'RemediatorIntakeErrors',
        exp_alerts: [
          {
            exp_labels: { severity: 'warning', team: 'platform' },
            exp_annotations: {
              summary: 'The remediator intake answers 10% of alert deliveries with a server error',
              description:
                'Outcome "unavailable" (503) means the Kubernetes API could not be reached within the retry budget, ' +
                '"error" (500) a bug. See remediator_intake_requests_total by outcome and the controller\'s logs.',
            },
          },
        ],
      },
    ],
  },
  {
    name: 'approval waiting too long',
    interval: '1m',
    input_series: [
      series('remediator_request_awaiting_approval_oldest_seconds', 'exported_namespace="web"', '0+60x90'),
      series('remediator_request_awaiting_approval_oldest_seconds', 'exported_namespace="db"', '60x90'),
    ],
    alert_rule_test: [
      { eval_time: '55m', alertname: 'RemediatorApprovalWaitingTooLong', exp_alerts: [] },
      {
        eval_time: '70m',
        alertname: 'RemediatorApprovalWaitingTooLong',
        exp_alerts: [
          {
            exp_labels: { severity: 'warning', team: 'platform', exported_namespace: 'web' },
            exp_annotations: {
              summary: 'A RemediationRequest in web has waited 1h 10m 0s for approval',
              description:
                'Approve or reject it (kubectl remediator list -n web); unanswered, it expires and its alert stays unremediated.',
            },
          },
        ],
      },
    ],
  },
];

describe('PrometheusRule', () => {
  let promtool = '';
  let dir = '';
  beforeAll(async () => {
    promtool = (await ensureExtraTools()).promtool;
    dir = mkdtempSync(join(tmpdir(), 'remediator-rules-'));
  }, EXTRA_TOOLS_BUILD_TIMEOUT_MS);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('is off by default, like the ServiceMonitor', async () => {
    const text = await renderChart({ helm: tb.binaries.helm, release: 'remediator', namespace: 'remediator-system' });
    expect(parseManifests(text).filter((o) => o.kind === 'PrometheusRule')).toEqual([]);
  });

  test('passes promtool check rules and its unit tests', async () => {
    const groups = await renderRules({ alertLabels: { team: 'platform' } });
    expect(groups.flatMap((g) => g.rules.map((r) => r.alert)).sort()).toEqual([
      'RemediatorAWSAccessDenied',
      'RemediatorApprovalWaitingTooLong',
      'RemediatorCircuitBreakerOpen',
      'RemediatorIntakeErrors',
      'RemediatorReconcileErrors',
    ]);
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
    const check = await run(promtool, ['check', 'rules', join(dir, 'rules.yaml')]);
    expect(check.stdout).toContain('SUCCESS: 5 rules found');

    // Every alert has a test that makes it fire.
    const tested = new Set(tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    expect([...tested].sort()).toEqual(groups.flatMap((g) => g.rules.map((r) => r.alert)).sort());

    writeFileSync(join(dir, 'tests.yaml'), stringify({ rule_files: ['rules.yaml'], evaluation_interval: '1m', tests }));
    const result = await run(promtool, ['test', 'rules', join(dir, 'tests.yaml')]).catch((e: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    });
    expect(result.stdout).toContain('SUCCESS');
  });

  test('honours the selector and the approval threshold', async () => {
    const groups = await renderRules({ selector: 'job="custom"', approvalWaitSeconds: 600 });
    const wait = groups[0]!.rules.find((r) => r.alert === 'RemediatorApprovalWaitingTooLong')!;
    expect(wait.expr).toBe('max by (exported_namespace) (remediator_request_awaiting_approval_oldest_seconds{job="custom"}) > 600');
    expect(groups[0]!.rules.every((r) => !r.expr.includes(target.namespace))).toBe(true);
  });

  test('reads only metrics the controller exports', async () => {
    const m = new Metrics(false);
    new IntakeMetrics(m.registry);
    const exported = new Set(m.registry.getMetricsAsArray().map((x) => x.name));
    const groups = await renderRules();
    const used = new Set(groups.flatMap((g) => g.rules.flatMap((r) => [...r.expr.matchAll(/\b([a-z_]+)\{/g)].map((x) => x[1]!))));
    expect(used.size).toBeGreaterThanOrEqual(6);
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
  });
});
