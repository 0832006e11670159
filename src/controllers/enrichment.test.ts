import type { AlertPolicySpec } from '../api/v1alpha1/index.js';
import type { InstanceFacts } from '../cloud/types.js';
import { failedGuard, optedOutBy, optOutTags, planMetricQueries, seriesFrom } from './enrichment.js';

const ctx = { alert: { name: 'A', source: 'generic' }, labels: { asg: 'web-asg' }, annotations: {} };
const spec = (metrics: NonNullable<AlertPolicySpec['enrichment']>['metrics']): AlertPolicySpec => ({
  targets: {},
  runbookRef: { name: 'rb' },
  enrichment: { metrics },
});

describe('planMetricQueries', () => {
  test('queries per instance by default, once when no dimension names the instance', () => {
    const planned = planMetricQueries(
      spec([
        { name: 'cpu', namespace: 'AWS/EC2', metricName: 'CPUUtilization' },
        {
          name: 'asgCpu',
          namespace: 'AWS/EC2',
          metricName: 'CPUUtilization',
          dimensions: { AutoScalingGroupName: '{{ labels.asg }}' },
          statistic: 'Maximum',
        },
      ]),
      ['i-00000001', 'i-00000002'],
      ctx,
    );
    expect(planned.map((p) => [p.name, p.instanceId, p.query.dimensions, p.query.statistic])).toEqual([
      ['cpu', 'i-00000001', { InstanceId: 'i-00000001' }, 'Average'],
      ['cpu', 'i-00000002', { InstanceId: 'i-00000002' }, 'Average'],
      ['asgCpu', undefined, { AutoScalingGroupName: 'web-asg' }, 'Maximum'],
    ]);
    expect(new Set(planned.map((p) => p.query.id)).size).toBe(3);
  });
});

describe('guards', () => {
  const instances: InstanceFacts[] = [
    { instanceId: 'i-00000001', tags: { Tier: 'web' } },
    { instanceId: 'i-00000002', tags: {} },
  ];
  const series = seriesFrom(
    [
      {
        name: 'cpu',
        instanceId: 'i-00000001',
        query: { id: 'q0', namespace: '', metricName: '', dimensions: {}, statistic: 'Average', periodSeconds: 60 },
      },
      {
        name: 'cpu',
        instanceId: 'i-00000002',
        query: { id: 'q1', namespace: '', metricName: '', dimensions: {}, statistic: 'Average', periodSeconds: 60 },
      },
    ],
    new Map([
      ['q0', { values: [95, 97], timestamps: ['t1', 't2'] }],
      ['q1', { values: [], timestamps: [] }],
    ]),
  );

  test('the mean of each series is compared with the threshold', () => {
    expect(series[0]?.mean).toBe(96);
    expect(failedGuard([{ metric: 'cpu', operator: '>', threshold: 90 }], instances.slice(0, 1), series.slice(0, 1))).toBeUndefined();
    expect(failedGuard([{ metric: 'cpu', operator: '<', threshold: 90 }], instances.slice(0, 1), series.slice(0, 1))).toContain(
      'averaged 96',
    );
  });

  test('no datapoints never pass a metric guard', () => {
    expect(failedGuard([{ metric: 'cpu', operator: '>', threshold: 0 }], instances, series)).toContain(
      'no datapoints for cpu on i-00000002',
    );
  });

  test('tag guards need the tag on every target', () => {
    expect(failedGuard([{ tag: { key: 'Tier', value: 'web' } }], instances, [])).toBe('i-00000002 does not carry tag Tier=web');
    expect(failedGuard([{ tag: { key: 'Tier' } }], instances.slice(0, 1), [])).toBeUndefined();
  });
});

describe("opt-out tags: the admin's always, a policy's only in addition", () => {
  const admin = { key: 'remediator.dev/opt-out', value: 'true' };
  const spec = (optOutTag?: { key: string; value: string }): AlertPolicySpec =>
    ({ targets: { fromLabels: ['i'] }, runbookRef: { name: 'rb' }, ...(optOutTag && { enrichment: { optOutTag } }) }) as AlertPolicySpec;
  const out = { instanceId: 'i-00000001', tags: { 'remediator.dev/opt-out': 'true' } } as InstanceFacts;
  const mine = { instanceId: 'i-00000002', tags: { 'team/skip': 'yes' } } as InstanceFacts;
  test("renaming the tag in a policy does not release an instance carrying the admin's tag", () => {
    expect(optedOutBy(spec({ key: 'renamed', value: 'x' }), [out], admin)).toMatch(/i-00000001 carry remediator.dev\/opt-out=true/);
    expect(optedOutBy(spec(), [out], admin)).toBeDefined();
  });
  test('a policy tag adds an opt-out', () => {
    expect(optedOutBy(spec({ key: 'team/skip', value: 'yes' }), [mine], admin)).toMatch(/i-00000002 carry team\/skip=yes/);
    expect(optedOutBy(spec(), [mine], admin)).toBeUndefined();
  });
  test("the admin's tag is the controller flag's, not the default, when set", () => {
    const flag = { key: 'ops/no-touch', value: '1' };
    expect(optedOutBy(spec(), [{ instanceId: 'i-00000003', tags: { 'ops/no-touch': '1' } } as InstanceFacts], flag)).toBeDefined();
    expect(optOutTags(spec({ key: 'ops/no-touch', value: '1' }), flag)).toEqual([flag]);
  });
});
