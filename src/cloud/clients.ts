/**
 * Builds the AWS SDK clients of one account and region. Credentials come only from the
 * SDK's default chain — on EKS that is IRSA (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`,
 * exchanged at STS) or Pod Identity — or from a role assumed from it (see pool.ts);
 * remediator never reads a static key itself. Endpoints follow `AWS_ENDPOINT_URL` and
 * `AWS_ENDPOINT_URL_<SERVICE>` (EC2, SSM, CLOUDWATCH, SNS, STS), which the SDK honours on
 * its own; the chart sets them from `aws.endpoints`.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Metrics } from '../observability/metrics.js';
import type { CredentialProvider } from './credentials.js';
import { BatchingInstanceDescriber, Ec2InstanceDescriber } from './ec2.js';
import { CloudWatchAlarmReader, CloudWatchMetricsReader } from './cloudwatch.js';
import { BatchingMetricsReader } from './cloudwatch-batching.js';
import { SnsPublisher } from './sns.js';
import { SsmAgentInspector, SsmCommandRunner } from './ssm.js';
import type { AgentInspector, AlarmReader, CommandCanceller, CommandRunner, InstanceDescriber, MetricsReader, Publisher } from './types.js';

export interface CloudOptions {
  region?: string;
  /** SDK attempts per call, including the first; throttling is retried with backoff. */
  maxAttempts?: number;
  metrics: Metrics;
  /** Default: the SDK's default chain, resolved by each client. */
  credentials?: CredentialProvider;
  /** The required target tag: the fleet DescribeInstances sweeps and GetMetricData asks ahead for (ec2.ts). */
  sweepTags?: Readonly<Record<string, string>>;
}

/** What the controllers use to reach AWS in one account and region. */
export interface CloudServices {
  instances: InstanceDescriber;
  commands: CommandRunner;
  /** CancelCommand (the same SSM client as `commands`). */
  cancels: CommandCanceller;
  /** The alarms that abort a rollout. */
  alarms: AlarmReader;
  agents: AgentInspector;
  metrics: MetricsReader;
  publisher: Publisher;
}

export interface Cloud extends CloudServices {
  destroy(): void;
}

export function createCloud(opts: CloudOptions): Cloud {
  const common = {
    region: opts.region,
    maxAttempts: opts.maxAttempts ?? 6,
    retryMode: 'standard' as const,
    // A half-open connection must not hold a worker (and its key) forever: a send that
    // times out is an ambiguous send, which the reconciler resolves by looking first.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  };
  const ec2 = new EC2Client(common);
  const ssm = new SSMClient(common);
  const ssmSend = new SSMClient({ ...common, maxAttempts: 1 });
  const cloudwatch = new CloudWatchClient(common);
  const sns = new SNSClient(common);
  const record = (service: string) => (operation: string, outcome: string) => opts.metrics.awsCalls.inc({ service, operation, outcome });
  const runner = new SsmCommandRunner(ssm, ssmSend, record('ssm'));
  // One batcher per client set: batching (one DescribeInstances, one GetMetricData per burst) is per account and region.
  const instances = new BatchingInstanceDescriber(
    new Ec2InstanceDescriber(ec2, record('ec2')),
    0,
    undefined,
    undefined,
    opts.sweepTags && { tags: opts.sweepTags },
  );
  return {
    instances,
    commands: runner,
    cancels: runner,
    alarms: new CloudWatchAlarmReader(cloudwatch, record('cloudwatch')),
    agents: new SsmAgentInspector(ssm, record('ssm')),
    metrics: new BatchingMetricsReader(new CloudWatchMetricsReader(cloudwatch, record('cloudwatch')), 0, undefined, undefined, () =>
      instances.fleet(),
    ),
    publisher: new SnsPublisher(sns, record('sns')),
    destroy() {
      ec2.destroy();
      ssm.destroy();
      ssmSend.destroy();
      cloudwatch.destroy();
      sns.destroy();
    },
  };
}
