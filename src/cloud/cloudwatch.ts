/**
 * CloudWatch: metrics for enrichment and guards (every query of a request in one
 * `GetMetricData` call), and the state of the alarms that abort a rollout (`DescribeAlarms`).
 */
import {
  type CloudWatchClient,
  DescribeAlarmsCommand,
  GetMetricDataCommand,
  type MetricDataQuery as CwQuery,
} from '@aws-sdk/client-cloudwatch';
import { callOutcome, classifyAwsError } from './errors.js';
import type { AlarmReader, AlarmStateValue, MetricDataQuery, MetricDataResult, MetricsReader } from './types.js';

/** DescribeAlarms takes at most 100 AlarmNames. */
const MAX_ALARM_NAMES_PER_CALL = 100;

export class CloudWatchAlarmReader implements AlarmReader {
  constructor(
    private readonly client: CloudWatchClient,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {}

  async alarmStates(names: readonly string[]): Promise<Map<string, AlarmStateValue>> {
    const out = new Map<string, AlarmStateValue>();
    const unique = [...new Set(names)];
    for (let i = 0; i < unique.length; i += MAX_ALARM_NAMES_PER_CALL) {
      let token: string | undefined;
      do {
        try {
          const page = await this.client.send(
            new DescribeAlarmsCommand({
              AlarmNames: unique.slice(i, i + MAX_ALARM_NAMES_PER_CALL),
              // Without AlarmTypes CloudWatch returns metric alarms only; a composite alarm is a fine abort signal too.
              AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
              NextToken: token,
            }),
          );
          this.onCall('DescribeAlarms', 'success');
          for (const a of [...(page.MetricAlarms ?? []), ...(page.CompositeAlarms ?? [])]) {
            if (a.AlarmName && a.StateValue) out.set(a.AlarmName, a.StateValue as AlarmStateValue);
          }
          token = page.NextToken;
        } catch (error) {
          this.onCall('DescribeAlarms', callOutcome(error));
          throw classifyAwsError(error, 'cloudwatch:DescribeAlarms');
        }
      } while (token);
    }
    return out;
  }
}

/** CloudWatch accepts at most 500 metric queries per GetMetricData call. */
const MAX_QUERIES_PER_CALL = 500;

export class CloudWatchMetricsReader implements MetricsReader {
  constructor(
    private readonly client: CloudWatchClient,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {}

  async getMetricData(queries: readonly MetricDataQuery[], start: Date, end: Date): Promise<Map<string, MetricDataResult>> {
    const results = new Map<string, MetricDataResult>();
    for (let i = 0; i < queries.length; i += MAX_QUERIES_PER_CALL) {
      const chunk: CwQuery[] = queries.slice(i, i + MAX_QUERIES_PER_CALL).map((q) => ({
        Id: q.id,
        ReturnData: true,
        MetricStat: {
          Metric: {
            Namespace: q.namespace,
            MetricName: q.metricName,
            Dimensions: Object.entries(q.dimensions).map(([Name, Value]) => ({ Name, Value })),
          },
          Period: q.periodSeconds,
          Stat: q.statistic,
        },
      }));
      let token: string | undefined;
      do {
        try {
          const out = await this.client.send(
            new GetMetricDataCommand({
              MetricDataQueries: chunk,
              StartTime: start,
              EndTime: end,
              NextToken: token,
              ScanBy: 'TimestampAscending',
            }),
          );
          this.onCall('GetMetricData', 'success');
          for (const r of out.MetricDataResults ?? []) {
            const prev = results.get(r.Id ?? '') ?? { values: [], timestamps: [] };
            prev.values.push(...(r.Values ?? []));
            prev.timestamps.push(...(r.Timestamps ?? []).map((t) => t.toISOString()));
            results.set(r.Id ?? '', prev);
          }
          token = out.NextToken;
        } catch (error) {
          this.onCall('GetMetricData', callOutcome(error));
          throw classifyAwsError(error, 'cloudwatch:GetMetricData');
        }
      } while (token);
    }
    return results;
  }
}
