/**
 * The CloudWatch Logs audit sink: one log group (the administrator's choice), one log
 * stream per namespace, one event per record. The group and stream are created on first
 * use (logs:CreateLogGroup, logs:CreateLogStream), so a new namespace needs no setup.
 * CloudWatch Logs orders a stream's events by timestamp: the writer never gives a record
 * a timestamp before the last one's (src/controllers/audit.ts).
 */
import {
  type CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  DescribeLogStreamsCommand,
  type DescribeLogStreamsCommandOutput,
  GetLogEventsCommand,
  type GetLogEventsCommandOutput,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import type { AuditEntryToWrite, AuditSink, StoredAuditEntry } from './audit-sink.js';
import { awsErrorName, countedCall } from './errors.js';

export class CloudWatchLogsAuditSink implements AuditSink {
  readonly location: string;
  readonly writeAction = 'logs:PutLogEvents';

  constructor(
    private readonly client: CloudWatchLogsClient,
    private readonly group: string,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {
    this.location = `CloudWatch Logs group "${group}"`;
  }

  private call<T>(operation: string, iamAction: string, send: () => Promise<T>): Promise<T> {
    return countedCall(this.onCall, operation, iamAction, send);
  }

  async write(namespace: string, entry: AuditEntryToWrite): Promise<void> {
    const put = () =>
      this.call('PutLogEvents', 'logs:PutLogEvents', () =>
        this.client.send(
          new PutLogEventsCommand({
            logGroupName: this.group,
            logStreamName: namespace,
            logEvents: [{ timestamp: entry.timestamp, message: entry.text }],
          }),
        ),
      );
    let out: Awaited<ReturnType<typeof put>>;
    try {
      out = await put();
    } catch (error) {
      if (awsErrorName(error) !== 'ResourceNotFoundException') throw error;
      // The group or the namespace's stream does not exist yet: create what is missing.
      await this.ensure(namespace);
      out = await put();
    }
    const rejected = out.rejectedLogEventsInfo;
    if (rejected && Object.values(rejected).some((v) => v !== undefined))
      throw new Error(`CloudWatch Logs rejected the audit record of ${namespace}: ${JSON.stringify(rejected)}`);
  }

  private async ensure(namespace: string): Promise<void> {
    const exists = (error: unknown) => awsErrorName(error) === 'ResourceAlreadyExistsException';
    await this.call('CreateLogGroup', 'logs:CreateLogGroup', () =>
      this.client.send(new CreateLogGroupCommand({ logGroupName: this.group })),
    ).catch((error: unknown) => {
      if (!exists(error)) throw error;
    });
    await this.call('CreateLogStream', 'logs:CreateLogStream', () =>
      this.client.send(new CreateLogStreamCommand({ logGroupName: this.group, logStreamName: namespace })),
    ).catch((error: unknown) => {
      if (!exists(error)) throw error;
    });
  }

  async read(namespace: string): Promise<StoredAuditEntry[]> {
    const out: StoredAuditEntry[] = [];
    let token: string | undefined;
    for (;;) {
      let page: GetLogEventsCommandOutput;
      try {
        page = await this.call('GetLogEvents', 'logs:GetLogEvents', () =>
          this.client.send(
            new GetLogEventsCommand({ logGroupName: this.group, logStreamName: namespace, startFromHead: true, nextToken: token }),
          ),
        );
      } catch (error) {
        if (awsErrorName(error) === 'ResourceNotFoundException') return out;
        throw error;
      }
      for (const e of page.events ?? [])
        out.push({ text: e.message ?? '', timestamp: e.timestamp ?? 0, where: `${this.group}/${namespace}#${out.length}` });
      // The forward token repeats once the end of the stream is reached.
      if (!page.nextForwardToken || page.nextForwardToken === token || (page.events ?? []).length === 0) return out;
      token = page.nextForwardToken;
    }
  }

  async last(namespace: string): Promise<StoredAuditEntry | undefined> {
    try {
      const page = await this.call('GetLogEvents', 'logs:GetLogEvents', () =>
        this.client.send(new GetLogEventsCommand({ logGroupName: this.group, logStreamName: namespace, startFromHead: false, limit: 1 })),
      );
      const e = page.events?.at(-1);
      return e ? { text: e.message ?? '', timestamp: e.timestamp ?? 0, where: `${this.group}/${namespace}#last` } : undefined;
    } catch (error) {
      if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
      throw error;
    }
  }

  async namespaces(): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      let page: DescribeLogStreamsCommandOutput;
      try {
        page = await this.call('DescribeLogStreams', 'logs:DescribeLogStreams', () =>
          this.client.send(new DescribeLogStreamsCommand({ logGroupName: this.group, nextToken: token })),
        );
      } catch (error) {
        if (awsErrorName(error) === 'ResourceNotFoundException') return names;
        throw error;
      }
      names.push(...(page.logStreams ?? []).map((s) => s.logStreamName ?? '').filter(Boolean));
      token = page.nextToken;
    } while (token);
    return names.sort();
  }

  destroy(): void {
    this.client.destroy();
  }
}
