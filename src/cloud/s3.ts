/**
 * The S3 audit sink: one object per record at `<prefix><namespace>/<sequence>-<uid>.json`,
 * the sequence zero-padded so that listing returns a namespace's records in chain order.
 * A record re-written after a crash lands on the same key (same position, same request):
 * a retry overwrites, it never adds a copy. Protect the prefix with S3 Object Lock or a
 * bucket policy denying s3:DeleteObject and overwrites by anyone else (docs/audit.md):
 * the chain detects tampering, the bucket prevents it.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { AuditEntryToWrite, AuditSink, StoredAuditEntry } from './audit-sink.js';
import { countedCall } from './errors.js';

/** Positions up to 10^12 sort as text. */
const SEQUENCE_DIGITS = 12;

export function auditObjectKey(prefix: string, namespace: string, sequence: number, uid: string): string {
  return `${prefix}${namespace}/${String(sequence).padStart(SEQUENCE_DIGITS, '0')}-${uid}.json`;
}

export class S3AuditSink implements AuditSink {
  readonly location: string;
  readonly writeAction = 's3:PutObject';

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {
    this.location = `s3://${bucket}/${prefix}`;
  }

  private call<T>(operation: string, iamAction: string, send: () => Promise<T>): Promise<T> {
    return countedCall(this.onCall, operation, iamAction, send);
  }

  async write(namespace: string, entry: AuditEntryToWrite): Promise<void> {
    await this.call('PutObject', 's3:PutObject', () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: auditObjectKey(this.prefix, namespace, entry.sequence, entry.uid),
          Body: entry.text,
          ContentType: 'application/json',
        }),
      ),
    );
  }

  /** Every key under a namespace's folder, in key (= chain) order. */
  private async keys(namespace: string): Promise<Array<{ key: string; modified: number }>> {
    const out: Array<{ key: string; modified: number }> = [];
    let token: string | undefined;
    do {
      const page = await this.call('ListObjectsV2', 's3:ListBucket', () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}${namespace}/`, ContinuationToken: token }),
        ),
      );
      for (const o of page.Contents ?? []) if (o.Key?.endsWith('.json')) out.push({ key: o.Key, modified: o.LastModified?.getTime() ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private async get(key: string, modified: number): Promise<StoredAuditEntry> {
    const out = await this.call('GetObject', 's3:GetObject', () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })),
    );
    return { text: (await out.Body?.transformToString('utf8')) ?? '', timestamp: modified, where: `s3://${this.bucket}/${key}` };
  }

  async read(namespace: string): Promise<StoredAuditEntry[]> {
    const keys = await this.keys(namespace);
    const out: StoredAuditEntry[] = new Array(keys.length);
    // A few reads at a time: a long history is thousands of small objects.
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < keys.length; i = next++) out[i] = await this.get(keys[i]!.key, keys[i]!.modified);
    };
    await Promise.all(Array.from({ length: Math.min(8, keys.length) }, worker));
    return out;
  }

  async last(namespace: string): Promise<StoredAuditEntry | undefined> {
    const last = (await this.keys(namespace)).at(-1);
    return last ? this.get(last.key, last.modified) : undefined;
  }

  async namespaces(): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.call('ListObjectsV2', 's3:ListBucket', () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, Delimiter: '/', ContinuationToken: token })),
      );
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(this.prefix.length, -1));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return names.sort();
  }

  destroy(): void {
    this.client.destroy();
  }
}
