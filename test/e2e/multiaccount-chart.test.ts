/**
 * The chart's per-service endpoints (`aws.endpoints`, for VPC endpoints without private
 * DNS) become the environment variables the SDK itself reads: rendered by the real helm,
 * then put in this process's environment with nothing else pointing anywhere, every
 * service the cloud layer calls — STS included, for the web identity and for assumed
 * roles — must reach the endpoint it was given, or it would head for real AWS and fail.
 */
import { renderChart, parseManifests } from '../../hack/chart/render.js';
import { Metrics } from '../../src/observability/metrics.js';
import { sessionTagsFor } from '../../src/cloud/location.js';
import { CloudPool } from '../../src/cloud/pool.js';
import { irsaVars } from '../testbed/aws.js';
import { startFaultProxy, type FaultProxy } from '../testbed/faultproxy.js';
import { testbedFromEnv } from './harness.js';

const REGION = 'eu-south-1';

describe('aws.endpoints in the chart', () => {
  const tb = testbedFromEnv();
  let proxy: FaultProxy;
  const saved = { ...process.env };

  beforeAll(async () => {
    proxy = await startFaultProxy({ upstream: tb.motoEndpoint });
  });

  afterAll(async () => {
    await proxy?.stop();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  });

  test('each service of the cloud layer goes to the endpoint its value names', async () => {
    const endpoints = Object.fromEntries(['ec2', 'ssm', 'monitoring', 'sns', 'sts'].map((s) => [s, proxy.endpoint]));
    const objects = parseManifests(
      await renderChart({
        helm: tb.binaries.helm,
        release: 'r',
        namespace: 'remediator-system',
        values: { aws: { region: REGION, endpoints } },
      }),
    );
    const deployment = objects.find((o) => o.kind === 'Deployment')!;
    type PodSpec = { containers: Array<{ env?: Array<{ name: string; value?: string }> }> };
    const pod = (deployment['spec'] as { template: { spec: PodSpec } }).template.spec;
    const env = (pod.containers[0]!.env ?? []).filter((e) => e.name.startsWith('AWS_'));
    expect(env.map((e) => e.name).sort()).toEqual([
      'AWS_ENDPOINT_URL_CLOUDWATCH',
      'AWS_ENDPOINT_URL_EC2',
      'AWS_ENDPOINT_URL_SNS',
      'AWS_ENDPOINT_URL_SSM',
      'AWS_ENDPOINT_URL_STS',
      'AWS_REGION',
    ]);

    for (const key of Object.keys(process.env)) if (key.startsWith('AWS_')) delete process.env[key];
    const irsa = irsaVars(proxy.endpoint, REGION);
    delete irsa['AWS_ENDPOINT_URL'];
    Object.assign(process.env, irsa, Object.fromEntries(env.map((e) => [e.name, e.value!])));

    const pool = new CloudPool({ homeRegion: REGION, metrics: new Metrics(false) });
    try {
      const roleArn = 'arn:aws:iam::222222222222:role/remediator-workload';
      const cloud = pool.forLocation({ region: REGION, roleArn, sessionTags: sessionTagsFor('web', 'p') });
      await cloud.instances.findByTags({ run: 'none' });
      await cloud.commands.findCommand('remediator:none', ['i-0123456789abcdef0']);
      const q = { id: 'q', namespace: 'AWS/EC2', metricName: 'CPUUtilization', dimensions: {}, statistic: 'Average', periodSeconds: 60 };
      await cloud.metrics.getMetricData([q], new Date(Date.now() - 600_000), new Date());
      await cloud.publisher.publish({ topicArn: `arn:aws:sns:${REGION}:222222222222:absent`, message: 'x' }).catch(() => undefined);
    } finally {
      pool.destroy();
    }
    const seen = new Set(proxy.calls().map((c) => `${c.service}:${c.operation}`));
    const expected = ['sts:AssumeRoleWithWebIdentity', 'sts:AssumeRole', 'ec2:DescribeInstances', 'ssm:ListCommands'];
    for (const call of [...expected, 'cloudwatch:GetMetricData', 'sns:Publish']) {
      expect({ call, seen: seen.has(call) }).toEqual({ call, seen: true });
    }
  });

  test('refuses a service it does not know', async () => {
    const values = { aws: { endpoints: { s3: 'https://s3' } } };
    const error = await renderChart({ helm: tb.binaries.helm, release: 'r', namespace: 'x', values }).catch(
      (e: unknown) => (e as Error).message,
    );
    expect(error).toContain("additional properties 's3' not allowed");
  });
});
