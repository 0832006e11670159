/**
 * Where audit records go (src/controllers/audit.ts writes them, `kubectl remediator
 * history` reads them): a durable store the cluster administrator chooses, outside the
 * cluster, so a record outlives the request, its policy and the cluster itself.
 *
 *   cloudwatch-logs  one log group, one stream per namespace, one event per record (logs.ts)
 *   s3               one bucket and prefix, one object per record under `<prefix><namespace>/` (s3.ts)
 *
 * A sink stores texts; what they mean (the record, its chain) is src/api/audit/v1.ts.
 */
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { S3Client } from '@aws-sdk/client-s3';
import type { CredentialProvider } from './credentials.js';
import { CloudWatchLogsAuditSink } from './logs.js';
import { S3AuditSink } from './s3.js';

export const AUDIT_SINK_TYPES = ['none', 'cloudwatch-logs', 's3'] as const;
export type AuditSinkType = (typeof AUDIT_SINK_TYPES)[number];

export interface AuditSinkConfig {
  type: Exclude<AuditSinkType, 'none'>;
  /** cloudwatch-logs: the log group. */
  logGroup?: string;
  /** s3: the bucket. */
  bucket?: string;
  /** s3: the key prefix (e.g. `remediator/audit/`); '' for none. */
  prefix?: string;
  /** Default: the SDK's (AWS_REGION). */
  region?: string;
}

/** One stored record, as the sink holds it. */
export interface StoredAuditEntry {
  text: string;
  /** Milliseconds: the event's timestamp (logs) or the object's last-modified time (s3). */
  timestamp: number;
  /** Where it is: the object key (s3) or `<group>/<stream>#<n>` (logs), for messages. */
  where: string;
}

export interface AuditEntryToWrite {
  sequence: number;
  uid: string;
  text: string;
  /** Milliseconds; never before the namespace's last entry (CloudWatch Logs orders by it). */
  timestamp: number;
}

export interface AuditSink {
  /** Where the records go, for messages: `CloudWatch Logs group "x"`, `s3://bucket/prefix`. */
  readonly location: string;
  /** The IAM action a failed write needs, for messages. */
  readonly writeAction: string;
  /** Appends one record to a namespace's stream. */
  write(namespace: string, entry: AuditEntryToWrite): Promise<void>;
  /** A namespace's records in stored order (oldest first); empty when it has none. */
  read(namespace: string): Promise<StoredAuditEntry[]>;
  /** The newest record of a namespace, or undefined when it has none. */
  last(namespace: string): Promise<StoredAuditEntry | undefined>;
  /** The namespaces that have records. */
  namespaces(): Promise<string[]>;
  destroy(): void;
}

/** Throws an Error saying what to set when the configuration is incomplete. */
export function createAuditSink(
  config: AuditSinkConfig,
  opts: {
    credentials?: CredentialProvider;
    onCall?: (service: string, operation: string, outcome: string) => void;
    env?: NodeJS.ProcessEnv;
  } = {},
): AuditSink {
  const env = opts.env ?? process.env;
  const common = {
    ...(config.region && { region: config.region }),
    maxAttempts: 6,
    retryMode: 'standard' as const,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
    ...(opts.credentials && { credentials: opts.credentials }),
  };
  const onCall = opts.onCall ?? (() => {});
  if (config.type === 'cloudwatch-logs') {
    if (!config.logGroup) throw new Error('the cloudwatch-logs audit sink needs a log group: set --audit-log-group (AUDIT_LOG_GROUP)');
    return new CloudWatchLogsAuditSink(new CloudWatchLogsClient(common), config.logGroup, (op, outcome) => onCall('logs', op, outcome));
  }
  if (!config.bucket) throw new Error('the s3 audit sink needs a bucket: set --audit-bucket (AUDIT_BUCKET)');
  // An endpoint override (an S3-compatible store, a VPC endpoint by URL, the test bed's
  // emulator) rarely resolves `<bucket>.<host>`: path-style there, AWS's default elsewhere.
  const forcePathStyle = Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
  return new S3AuditSink(new S3Client({ ...common, forcePathStyle }), config.bucket, config.prefix ?? '', (op, outcome) =>
    onCall('s3', op, outcome),
  );
}
