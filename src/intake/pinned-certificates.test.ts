import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PinnedCertificateSource } from './pinned-certificates.js';
import { selfSignedSnsCertificate } from './self-signed.js';

describe('PinnedCertificateSource', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinned-'));
  const pem = join(dir, 'c.pem');
  beforeAll(() => writeFileSync(pem, selfSignedSnsCertificate(1).cert));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const url = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-pinned.pem';

  test('a pinned URL is answered from the file; other URLs go to the fallback', async () => {
    const asked: string[] = [];
    const src = new PinnedCertificateSource([`${url}=${pem}`], {
      get: async (u) => (asked.push(u.href), Promise.reject(new Error('no network'))),
    });
    expect((await src.get(new URL(url))).subject).toContain('sns.amazonaws.com');
    await expect(src.get(new URL('https://sns.us-east-1.amazonaws.com/other.pem'))).rejects.toThrow('no network');
    expect(asked).toEqual(['https://sns.us-east-1.amazonaws.com/other.pem']);
  });

  test('a pin must still name an SNS host, and a readable certificate', () => {
    const fallback = { get: () => Promise.reject(new Error('unused')) };
    expect(() => new PinnedCertificateSource([`https://evil.example.com/x.pem=${pem}`], fallback)).toThrow(/not an SNS certificate/);
    expect(() => new PinnedCertificateSource([`${url}=${join(dir, 'missing.pem')}`], fallback)).toThrow(/cannot read a PEM/);
    expect(() => new PinnedCertificateSource(['no-equals-sign'], fallback)).toThrow(/must look like/);
  });
});
