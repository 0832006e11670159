/**
 * The audit record, `remediator.dev/audit/v1`: what outlives a RemediationRequest once
 * retention deletes it (who asked, the alert, the plan and its digest, who approved and
 * when, what was sent where, how each instance fared, the verification verdict). It is a
 * stable API (docs/audit.md): fields are only ever added, never renamed or given a new
 * meaning; a change that would do either is `audit/v2`.
 *
 * Records form one hash chain per namespace: each carries its position (`sequence`), the
 * digest of the record before it (`previousDigest`) and its own (`digest`, sha256 of its
 * canonical JSON without that field). Changing, removing or inserting a record breaks
 * the chain, which `verifyChain` (and `kubectl remediator history --verify`) finds. The
 * controller (src/controllers/audit.ts) writes them; the CLI reads them back. Pure code.
 */
import { createHash } from 'node:crypto';

export const AUDIT_API_VERSION = 'remediator.dev/audit/v1';
export const AUDIT_KIND = 'RemediationRecord';
/** `previousDigest` of a namespace's first record. */
export const GENESIS_DIGEST = `sha256:${'0'.repeat(64)}`;

export interface AuditInstanceOutcome {
  instanceId: string;
  /** SSM's invocation status (Success, Failed, TimedOut, ...), or NotSent. */
  status: string;
  responseCode?: number;
}

export interface AuditSsmCommand {
  commandId?: string;
  instanceIds: string[];
  requestedAt?: string;
  refused?: string;
}

export interface AuditRecord {
  apiVersion: typeof AUDIT_API_VERSION;
  kind: typeof AUDIT_KIND;
  /** 1 for a namespace's first record, then one more for each. */
  sequence: number;
  /** `digest` of the record before this one in its namespace, or GENESIS_DIGEST. */
  previousDigest: string;
  /** sha256 of this record's canonical JSON without this field: `sha256:<hex>`. */
  digest: string;
  /** When the controller wrote the record (RFC 3339). */
  recordedAt: string;
  request: {
    namespace: string;
    name: string;
    /** The request's uid: a record's identity (a second record for one uid is a re-write after a crash). */
    uid: string;
    policy: string;
    createdAt?: string;
    requestedBy?: string;
  };
  alert: {
    source: string;
    name: string;
    status?: string;
    fingerprint?: string;
    startsAt?: string;
    labels?: Record<string, string>;
  };
  plan?: {
    digest: string;
    runbook: string;
    runbookGeneration: number;
    policyGeneration: number;
    risk: string;
    region: string;
    roleArn?: string;
    targets: string[];
    ssm?: { documentName: string; parameters: Record<string, string[]> };
    sns?: { topicArn: string; subject?: string; messageSha256: string };
  };
  approval?: {
    decision: string;
    approver: string;
    reason?: string;
    planDigest?: string;
    /** When the controller took the decision into account (the Approved condition). */
    at?: string;
  };
  execution?: {
    dryRun?: boolean;
    ssm?: { documentName: string; intentRecordedAt: string; commands: AuditSsmCommand[]; output?: Record<string, string> };
    sns?: { topicArn: string; intentRecordedAt: string; messageId?: string; publishedAt?: string };
  };
  instances?: AuditInstanceOutcome[];
  verification?: { verdict: 'Verified' | 'Ineffective' | 'Unknown'; reason?: string; message?: string; at?: string };
  notifications?: Array<{ phase: string; messageId?: string; error?: string; sentAt?: string }>;
  outcome: {
    phase: string;
    reason?: string;
    message?: string;
    startTime?: string;
    completionTime?: string;
  };
}

/** JSON with object keys sorted at every level and no whitespace: one text per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The digest a record must carry: sha256 of its canonical JSON without `digest`. */
export function recordDigest(record: Omit<AuditRecord, 'digest'> & { digest?: string }): string {
  const { digest: _ignored, ...rest } = record;
  return `sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`;
}

/** Seals a record: links it after `previous` (undefined: the first) and sets its digest. */
export function sealRecord(
  body: Omit<AuditRecord, 'sequence' | 'previousDigest' | 'digest'>,
  previous: Pick<AuditRecord, 'sequence' | 'digest'> | undefined,
): AuditRecord {
  const linked = {
    ...body,
    sequence: (previous?.sequence ?? 0) + 1,
    previousDigest: previous?.digest ?? GENESIS_DIGEST,
  };
  return { ...linked, digest: recordDigest(linked) };
}

/** The text stored in a sink: one line of canonical JSON. */
export function serializeRecord(record: AuditRecord): string {
  return canonicalJson(record);
}

/** A stored text read back as a record; throws on anything that is not one. */
export function parseRecord(text: string): AuditRecord {
  const value = JSON.parse(text) as Partial<AuditRecord>;
  if (!value || typeof value !== 'object' || value.apiVersion !== AUDIT_API_VERSION || value.kind !== AUDIT_KIND)
    throw new Error(`not a ${AUDIT_API_VERSION} ${AUDIT_KIND}`);
  if (!Number.isInteger(value.sequence) || typeof value.digest !== 'string' || typeof value.previousDigest !== 'string')
    throw new Error('sequence, digest or previousDigest missing');
  if (typeof value.request?.uid !== 'string') throw new Error('request.uid missing');
  return value as AuditRecord;
}

/** What is wrong with a chain, record by record. */
export interface ChainProblem {
  /** Where in the stream (0-based, in the order read), and the record's sequence when it has one. */
  index: number;
  sequence?: number;
  uid?: string;
  kind: 'unreadable' | 'digest-mismatch' | 'broken-link' | 'sequence-gap' | 'fork';
  message: string;
}

export interface ChainVerdict {
  /** True when there are no problems (duplicates alone do not break a chain). */
  intact: boolean;
  records: number;
  problems: ChainProblem[];
  /**
   * A record written twice for one request (the controller crashed between writing it
   * and remembering it had): the same uid and position, or the same uid again later with
   * the chain intact. Not a break; listed so an auditor can see why a request appears twice.
   */
  duplicates: Array<{ uid: string; sequences: number[] }>;
  /** The last record of the chain (what the next one links to). */
  head?: Pick<AuditRecord, 'sequence' | 'digest'> & { uid: string };
}

/**
 * Checks one namespace's records, in the order the sink returned them (its order is
 * not trusted: records are put in sequence order first). Each record's digest must match
 * its content, each must link to the one before, and positions must have no gaps. Two
 * records at one position are a re-write when they are the same request with the same
 * link (a crash between writing and remembering), and a fork (a break) otherwise.
 */
export function verifyChain(stored: ReadonlyArray<{ text: string } | { record: AuditRecord }>): ChainVerdict {
  const problems: ChainProblem[] = [];
  const records: Array<{ index: number; record: AuditRecord }> = [];
  stored.forEach((s, index) => {
    try {
      const record = 'record' in s ? s.record : parseRecord(s.text);
      if (recordDigest(record) !== record.digest) {
        problems.push({
          index,
          sequence: record.sequence,
          uid: record.request.uid,
          kind: 'digest-mismatch',
          message: `record ${record.sequence} (${record.request.namespace}/${record.request.name}) was changed after it was written: its content no longer matches its digest`,
        });
      }
      records.push({ index, record });
    } catch (error) {
      problems.push({ index, kind: 'unreadable', message: `entry ${index} is not an audit record: ${(error as Error).message}` });
    }
  });
  records.sort((a, b) => a.record.sequence - b.record.sequence || a.index - b.index);
  const duplicates = new Map<string, number[]>();
  const seenUid = new Map<string, number>();
  let prev: AuditRecord | undefined;
  for (const { index, record } of records) {
    const where = `record ${record.sequence} (${record.request.namespace}/${record.request.name})`;
    if (prev && record.sequence === prev.sequence) {
      if (record.request.uid === prev.request.uid && record.previousDigest === prev.previousDigest) {
        // Written twice at one position: either copy is the chain's; the next links to one of them.
        duplicates.set(record.request.uid, [...(duplicates.get(record.request.uid) ?? [prev.sequence]), record.sequence]);
        continue;
      }
      problems.push({
        index,
        sequence: record.sequence,
        uid: record.request.uid,
        kind: 'fork',
        message: `${where}: two different records claim position ${record.sequence}`,
      });
      continue;
    }
    const expectedSequence = (prev?.sequence ?? 0) + 1;
    if (record.sequence !== expectedSequence) {
      problems.push({
        index,
        sequence: record.sequence,
        uid: record.request.uid,
        kind: 'sequence-gap',
        message: `${where}: expected position ${expectedSequence}; records ${expectedSequence}..${record.sequence - 1} are missing`,
      });
    }
    // After a gap the link cannot be checked (the record it names is missing): the gap is the problem.
    const expectedLink = record.sequence !== expectedSequence ? undefined : prev ? prev.digest : GENESIS_DIGEST;
    // A twice-written predecessor: the link may name either copy.
    const alternatives = prev
      ? records
          .filter((r) => r.record.sequence === prev!.sequence && r.record.request.uid === prev!.request.uid)
          .map((r) => r.record.digest)
      : [];
    if (expectedLink !== undefined && record.previousDigest !== expectedLink && !alternatives.includes(record.previousDigest)) {
      problems.push({
        index,
        sequence: record.sequence,
        uid: record.request.uid,
        kind: 'broken-link',
        message: `${where}: previousDigest ${record.previousDigest} does not match the digest of record ${prev?.sequence ?? 0}${prev ? ` (${prev.digest})` : ''}`,
      });
    }
    const earlier = seenUid.get(record.request.uid);
    if (earlier !== undefined) duplicates.set(record.request.uid, [...(duplicates.get(record.request.uid) ?? [earlier]), record.sequence]);
    seenUid.set(record.request.uid, record.sequence);
    prev = record;
  }
  return {
    intact: problems.length === 0,
    records: records.length,
    problems,
    duplicates: [...duplicates].map(([uid, sequences]) => ({ uid, sequences })),
    ...(prev && { head: { sequence: prev.sequence, digest: prev.digest, uid: prev.request.uid } }),
  };
}
