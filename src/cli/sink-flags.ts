/**
 * The flags and variables that name the audit sink, shared by `history` and `ui` so
 * both read the same record the same way: the values of the chart's `controller.audit`
 * (--log-group, or --bucket with --prefix; --region), else REMEDIATOR_AUDIT_* variables.
 * Types only from the cloud layer, so the argument parser stays free of the AWS SDK.
 */
import type { AuditSinkConfig } from '../cloud/audit-sink.js';

/** node:util parseArgs options for the sink, spread into each command's own options. */
export const SINK_OPTIONS = {
  'log-group': { type: 'string' },
  bucket: { type: 'string' },
  prefix: { type: 'string' },
  region: { type: 'string' },
} as const;

/** The help lines for SINK_OPTIONS. */
export const SINK_FLAGS_USAGE = `      --log-group GROUP  the CloudWatch Logs group (the chart's controller.audit.logGroup; env REMEDIATOR_AUDIT_LOG_GROUP)
      --bucket BUCKET    the S3 bucket (controller.audit.bucket; env REMEDIATOR_AUDIT_BUCKET)
      --prefix PREFIX    the S3 key prefix (controller.audit.prefix; env REMEDIATOR_AUDIT_PREFIX)
      --region REGION    the sink's region (env REMEDIATOR_AUDIT_REGION, else AWS_REGION)`;

export interface SinkFlags {
  'log-group'?: string;
  bucket?: string;
  prefix?: string;
  region?: string;
}

/** A sink named twice, or a flag without its sink; the message says what to change. */
export class SinkFlagsError extends Error {
  override readonly name = 'SinkFlagsError';
}

/** The sink the flags (else the environment) name, or undefined when none is named. */
export function sinkConfigFrom(values: SinkFlags, env: NodeJS.ProcessEnv): AuditSinkConfig | undefined {
  const logGroup = values['log-group'] ?? env.REMEDIATOR_AUDIT_LOG_GROUP;
  const bucket = values.bucket ?? env.REMEDIATOR_AUDIT_BUCKET;
  const region = values.region ?? env.REMEDIATOR_AUDIT_REGION;
  if (logGroup && bucket) throw new SinkFlagsError('name one sink: --log-group or --bucket, not both');
  if (logGroup) return { type: 'cloudwatch-logs', logGroup, ...(region && { region }) };
  if (bucket) {
    const raw = values.prefix ?? env.REMEDIATOR_AUDIT_PREFIX ?? '';
    // As the controller stores it (src/config.ts): a prefix is a folder.
    const prefix = raw && !raw.endsWith('/') ? `${raw}/` : raw;
    return { type: 's3', bucket, prefix, ...(region && { region }) };
  }
  return undefined;
}

/** Where the records are, for people: `CloudWatch Logs group "X" (region)`, `s3://bucket/prefix (region)`. */
export function sinkDescription(sink: AuditSinkConfig, env: NodeJS.ProcessEnv): string {
  const region = sink.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const where = sink.type === 's3' ? `S3 s3://${sink.bucket}/${sink.prefix ?? ''}` : `CloudWatch Logs group "${sink.logGroup}"`;
  return region ? `${where} (${region})` : where;
}
