/**
 * Builds the AWS SDK clients. Credentials come only from the SDK's default chain: on EKS
 * that is IRSA (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, exchanged at STS) or Pod
 * Identity; remediator never reads a static key itself. Endpoints follow
 * `AWS_ENDPOINT_URL[_<SERVICE>]`, which the SDK honours on its own.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Metrics } from '../observability/metrics.js';
import { BatchingInstanceDescriber, Ec2InstanceDescriber } from './ec2.js';
import { CloudWatchMetricsReader } from './cloudwatch.js';
import { SnsPublisher } from './sns.js';
import { SsmCommandRunner } from './ssm.js';
import type { CommandRunner, InstanceDescriber, MetricsReader, Publisher } from './types.js';

export interface CloudOptions {
  region?: string;
  /** SDK attempts per call, including the first; throttling is retried with backoff. */
  maxAttempts?: number;
  metrics: Metrics;
}

export interface Cloud {
  instances: InstanceDescriber;
  commands: CommandRunner;
  metrics: MetricsReader;
  publisher: Publisher;
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
  };
  const ec2 = new EC2Client(common);
  const ssm = new SSMClient(common);
  const ssmSend = new SSMClient({ ...common, maxAttempts: 1 });
  const cloudwatch = new CloudWatchClient(common);
  const sns = new SNSClient(common);
  const record = (service: string) => (operation: string, outcome: string) =>
    opts.metrics.awsCalls.inc({ service, operation, outcome });
  return {
    instances: new BatchingInstanceDescriber(new Ec2InstanceDescriber(ec2, record('ec2'))),
    commands: new SsmCommandRunner(ssm, ssmSend, record('ssm')),
    metrics: new CloudWatchMetricsReader(cloudwatch, record('cloudwatch')),
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
