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
  /** At most 50 per command (SendCommand's limit): a larger fleet goes out as several commands. */
  instanceIds: string[];
  parameters: Record<string, string[]>;
  /** Carries the request UID; how a lost response is found again. At most 100 characters. */
  comment: string;
  timeoutSeconds: number;
  maxConcurrency: string;
  maxErrors: string;
  /** Full output to CloudWatch Logs, written by the instance's own role (see docs/aws-limits.md). */
  cloudWatchOutput?: CloudWatchOutput;
  /** Full output to S3, written by the instance's own role (see docs/aws-limits.md). */
  s3Output?: S3Output;
  /** A CloudWatch alarm that stops the command when it is in ALARM (SSM takes exactly one per command). */
  alarm?: CommandAlarm;
}

/** SendCommand's AlarmConfiguration, for the one alarm SSM takes per command (API_AlarmConfiguration). */
export interface CommandAlarm {
  /** 1-255 characters, not only blanks (API_Alarm). */
  name: string;
  /** true: the command goes on when SSM cannot read the alarm's state. */
  ignorePollAlarmFailure: boolean;
}

export interface CloudWatchOutput {
  /** Default (SSM's): `/aws/ssm/<document name>`. 1-512 characters of `[.\-_/#A-Za-z0-9]`. */
  logGroupName?: string;
}

export interface S3Output {
  /** 3-63 characters. */
  bucketName: string;
  /** At most 500 characters; SSM appends `<command id>/<instance id>/...`. */
  keyPrefix?: string;
  /** The bucket's region when it differs from the command's; 3-20 characters. */
  region?: string;
}

/**
 * SSM managed node ids as SendCommand accepts them: EC2 instances (`i-` and 8 or 17 hex
 * digits) and hybrid managed nodes registered through an SSM activation (`mi-` and 17
 * hex digits). EC2 (DescribeInstances, CloudWatch's InstanceId dimension) knows only
 * the former.
 */
export const MANAGED_NODE_ID_PATTERN = '^(i-[0-9a-f]{8}([0-9a-f]{9})?|mi-[0-9a-f]{17})$';
const MANAGED_NODE_ID = new RegExp(MANAGED_NODE_ID_PATTERN);

export function isManagedNodeId(id: string): boolean {
  return MANAGED_NODE_ID.test(id);
}

export function isHybridNodeId(id: string): boolean {
  return id.startsWith('mi-') && MANAGED_NODE_ID.test(id);
}

/** What SSM knows of a node's agent (DescribeInstanceInformation). */
export interface AgentStatus {
  /** Online, ConnectionLost or Inactive; only Online agents receive commands. */
  pingStatus: string;
  /** Linux, Windows or MacOS. */
  platformType?: string;
  agentVersion?: string;
  /** When the agent last reported, ISO 8601. */
  lastPingAt?: string;
  /** EC2Instance or ManagedInstance (a hybrid `mi-` node). */
  resourceType?: string;
}

export interface AgentInspector {
  /**
   * SSM's view of each node's agent. A node SSM does not know — no agent ever
   * registered, the instance stopped, another account's — is absent from the map: to
   * Run Command it is as unreachable as a ConnectionLost one.
   */
  agentStatus(instanceIds: readonly string[]): Promise<Map<string, AgentStatus>>;
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
 * CancelCommand: SSM cancels the invocations of a command that have not ended (they
 * become Cancelling, then Cancelled); ended ones are unchanged, so cancelling twice is
 * harmless. "There is no guarantee that the command will be terminated" (API_CancelCommand):
 * the invocations' own statuses say what happened.
 */
export interface CommandCanceller {
  /** `instanceIds` (at most 50): only these; all of the command's when absent. */
  cancelCommand(commandId: string, instanceIds?: readonly string[]): Promise<void>;
}

/** A CloudWatch alarm's state value. */
export type AlarmStateValue = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

export interface AlarmReader {
  /** The state of each named alarm (metric and composite) that exists; a name CloudWatch does not know is absent. */
  alarmStates(names: readonly string[]): Promise<Map<string, AlarmStateValue>>;
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
