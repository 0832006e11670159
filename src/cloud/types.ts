/**
 * The narrow interfaces through which the controllers reach AWS. They list only what
 * remediator calls, so the core logic is plain code that tests drive with fakes, and
 * the real implementations (the only importers of `@aws-sdk/*`) sit beside them.
 */

export interface InstanceFacts {
  instanceId: string;
  state?: string;
  instanceType?: string;
  availabilityZone?: string;
  privateIpAddress?: string;
  tags: Record<string, string>;
}

export interface DescribeResult {
  found: InstanceFacts[];
  /** Requested IDs that do not exist (or are not visible to these credentials). */
  missing: string[];
}

export interface InstanceDescriber {
  describe(instanceIds: readonly string[]): Promise<DescribeResult>;
  /** Running instances carrying every one of these tags. */
  findByTags(tags: Readonly<Record<string, string>>): Promise<InstanceFacts[]>;
}

export interface MetricDataQuery {
  /** Unique within one call; CloudWatch wants `^[a-z][a-zA-Z0-9_]*$`. */
  id: string;
  namespace: string;
  metricName: string;
  dimensions: Record<string, string>;
  statistic: string;
  periodSeconds: number;
}

export interface MetricDataResult {
  values: number[];
  timestamps: string[];
}

export interface MetricsReader {
  /** All queries in as few `GetMetricData` calls as CloudWatch allows (500 queries each). */
  getMetricData(queries: readonly MetricDataQuery[], start: Date, end: Date): Promise<Map<string, MetricDataResult>>;
}

export interface PublishInput {
  topicArn: string;
  subject?: string;
  message: string;
  attributes?: Record<string, string>;
  /** FIFO topics only. */
  messageGroupId?: string;
  /** FIFO topics only: SNS drops a second message with the same id within 5 minutes. */
  deduplicationId?: string;
}

export interface Publisher {
  publish(input: PublishInput): Promise<{ messageId: string }>;
}

export interface SendCommandInput {
  documentName: string;
  instanceIds: string[];
  parameters: Record<string, string[]>;
  /** Carries the request UID; how a lost response is found again. At most 100 characters. */
  comment: string;
  timeoutSeconds: number;
  maxConcurrency: string;
  maxErrors: string;
}

export interface SentCommand {
  commandId: string;
  requestedAt?: string;
}

/** Terminal SSM invocation statuses: an invocation here never changes again. */
export const TERMINAL_INVOCATION_STATUSES: ReadonlySet<string> = new Set([
  'Success',
  'Failed',
  'TimedOut',
  'Cancelled',
  'Undeliverable',
  'Terminated',
  'InvalidPlatform',
  'AccessDenied',
  'DeliveryTimedOut',
  'ExecutionTimedOut',
]);

export interface InvocationResult {
  instanceId: string;
  /** SSM's status (Pending, InProgress, Success, Failed, TimedOut, ...). */
  status: string;
  responseCode?: number;
  stdout?: string;
  stderr?: string;
}

export interface CommandRunner {
  sendCommand(input: SendCommandInput): Promise<SentCommand>;
  /** Find a command already sent with this comment to these instances, if any. */
  findCommand(comment: string, instanceIds: readonly string[]): Promise<SentCommand | undefined>;
  getInvocation(commandId: string, instanceId: string): Promise<InvocationResult>;
}

/**
 * AWS refused a call for lack of permission. Carries the IAM action so the status can
 * tell the user exactly which permission the role is missing.
 */
export class AwsAccessDeniedError extends Error {
  override readonly name = 'AwsAccessDeniedError';
  constructor(
    readonly iamAction: string,
    readonly awsMessage: string,
  ) {
    super(`AWS denied ${iamAction}: ${awsMessage}. Grant ${iamAction} to the controller's IAM role (see config/iam/policy.json).`);
  }
}
