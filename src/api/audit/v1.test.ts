import {
  AUDIT_API_VERSION,
  AUDIT_KIND,
  canonicalJson,
  GENESIS_DIGEST,
  parseRecord,
  recordDigest,
  sealRecord,
  serializeRecord,
  verifyChain,
  type AuditRecord,
} from './v1.js';

const body = (uid: string, name = uid): Omit<AuditRecord, 'sequence' | 'previousDigest' | 'digest'> => ({
  apiVersion: AUDIT_API_VERSION,
  kind: AUDIT_KIND,
  recordedAt: '2026-12-06T10:00:00.000Z',
  request: { namespace: 'ns', name, uid, policy: 'p' },
  alert: { source: 'generic', name: 'Down' },
  outcome: { phase: 'Succeeded' },
});

function chain(...uids: string[]): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (const uid of uids) out.push(sealRecord(body(uid), out.at(-1)));
  return out;
}
const texts = (records: AuditRecord[]) => records.map((r) => ({ text: serializeRecord(r) }));

describe('audit record chain (remediator.dev/audit/v1)', () => {
  test('canonical JSON sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: undefined, x: 'é' }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"x":"é","z":1}]},"b":1}',
    );
  });

  test('records link to their predecessor, the first to the genesis digest', () => {
    const [a, b, c] = chain('u1', 'u2', 'u3');
    expect(a!.sequence).toBe(1);
    expect(a!.previousDigest).toBe(GENESIS_DIGEST);
    expect(b!.previousDigest).toBe(a!.digest);
    expect(c!.previousDigest).toBe(b!.digest);
    expect(c!.digest).toBe(recordDigest(c!));
    expect(c!.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  test('an intact chain verifies, whatever order the sink returns it in', () => {
    const records = chain('u1', 'u2', 'u3');
    const v = verifyChain(texts([records[2]!, records[0]!, records[1]!]));
    expect(v).toMatchObject({ intact: true, records: 3, problems: [], duplicates: [] });
    expect(v.head).toEqual({ sequence: 3, digest: records[2]!.digest, uid: 'u3' });
  });

  test('a changed record is found, by its own digest and by the next link', () => {
    const records = chain('u1', 'u2', 'u3');
    const edited = { ...records[1]!, approval: { decision: 'Approved', approver: 'mallory' } };
    const v = verifyChain(texts([records[0]!, edited, records[2]!]));
    expect(v.intact).toBe(false);
    expect(v.problems.map((p) => [p.kind, p.sequence])).toEqual([['digest-mismatch', 2]]);
    // Re-sealed by someone who cannot change what came after: the next link breaks.
    const resealed = { ...edited, digest: recordDigest(edited) };
    const w = verifyChain(texts([records[0]!, resealed, records[2]!]));
    expect(w.problems.map((p) => [p.kind, p.sequence])).toEqual([['broken-link', 3]]);
  });

  test('a removed record is a gap; an inserted one a fork or a broken link', () => {
    const records = chain('u1', 'u2', 'u3');
    expect(verifyChain(texts([records[0]!, records[2]!])).problems.map((p) => p.kind)).toEqual(['sequence-gap']);
    expect(verifyChain(texts([records[1]!, records[2]!])).problems.map((p) => p.kind)).toEqual(['sequence-gap']);
    const forged = sealRecord(body('evil'), records[0]);
    expect(verifyChain(texts([...records, forged])).problems.map((p) => p.kind)).toEqual(['fork']);
    const appended = sealRecord(body('evil'), { sequence: 3, digest: GENESIS_DIGEST });
    expect(verifyChain(texts([...records, appended])).problems.map((p) => p.kind)).toEqual(['broken-link']);
    expect(verifyChain([...texts(records), { text: 'hello' }]).problems.map((p) => p.kind)).toEqual(['unreadable']);
  });

  test('a record written twice after a crash is a duplicate, not a break', () => {
    const records = chain('u1', 'u2');
    // Same position, same request, same link; written again a moment later.
    const again = sealRecord({ ...body('u2'), recordedAt: '2026-12-06T10:00:05.000Z' }, records[0]);
    const next = sealRecord(body('u3'), again);
    const v = verifyChain(texts([records[0]!, records[1]!, again, next]));
    expect(v).toMatchObject({ intact: true, duplicates: [{ uid: 'u2', sequences: [2, 2] }] });
    // Or written again later, once the chain had moved on: intact, listed.
    const later = sealRecord(body('u1'), records[1]);
    expect(verifyChain(texts([...records, later]))).toMatchObject({ intact: true, duplicates: [{ uid: 'u1', sequences: [1, 3] }] });
  });

  test('parseRecord refuses what is not a v1 record', () => {
    expect(() => parseRecord('{"apiVersion":"remediator.dev/audit/v2","kind":"RemediationRecord"}')).toThrow(
      /not a remediator.dev\/audit\/v1/,
    );
    expect(() => parseRecord(JSON.stringify({ ...chain('u1')[0], sequence: 'x' }))).toThrow(/sequence/);
    expect(parseRecord(serializeRecord(chain('u1')[0]!)).request.uid).toBe('u1');
  });
});
