import { sign, X509Certificate } from 'node:crypto';
import { IntakeError } from './errors.js';
import { selfSignedSnsCertificate } from './self-signed.js';
import type { SnsEnvelope } from './schemas.js';
import {
  CertificateUnavailableError,
  checkSigningCertUrl,
  checkSubscribeUrl,
  checkTimestamp,
  HttpsCertificateSource,
  SNS_MAX_CLOCK_SKEW_MS,
  SNS_REPLAY_WINDOW_MS,
  SnsVerifier,
  strictConfirmUrlPolicy,
  stringToSign,
} from './sns.js';

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:alarms';
const CERT_URL = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem';

/** A throwaway RSA key and self-signed certificate (Node cannot issue certificates; openssl can). */

const { key, cert } = selfSignedSnsCertificate();
const x509 = new X509Certificate(cert);

function signed(
  env: Omit<SnsEnvelope, 'Signature' | 'SignatureVersion' | 'SigningCertURL'>,
  version: '1' | '2' = '2',
  signingKey = key,
): SnsEnvelope {
  const unsigned = { ...env, SignatureVersion: version, SigningCertURL: CERT_URL };
  const signature = sign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256', Buffer.from(stringToSign(unsigned), 'utf8'), signingKey).toString(
    'base64',
  );
  return { ...unsigned, Signature: signature };
}

const notification = (over: Partial<SnsEnvelope> = {}) => ({
  Type: 'Notification',
  MessageId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324',
  TopicArn: TOPIC,
  Subject: 'ALARM: "cpu-high" in US East (N. Virginia)',
  Message: '{"AlarmName":"cpu-high"}',
  // Now: older notifications are refused as possible replays (checkTimestamp).
  Timestamp: new Date().toISOString(),
  UnsubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe',
  ...over,
});

const fixedSource = { get: async () => x509 };

async function refusal(p: Promise<unknown>): Promise<IntakeError> {
  try {
    await p;
  } catch (error) {
    if (error instanceof IntakeError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('SNS string to sign (AWS canonical format)', () => {
  test('Notification: Message, MessageId, Subject, Timestamp, TopicArn, Type as Name\\nvalue\\n', () => {
    const env = { ...notification({ Timestamp: '2025-03-01T10:00:00.000Z' }), SignatureVersion: '1' };
    expect(stringToSign(env)).toBe(
      `Message\n{"AlarmName":"cpu-high"}\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nALARM: "cpu-high" in US East (N. Virginia)\nTimestamp\n2025-03-01T10:00:00.000Z\nTopicArn\n${TOPIC}\nType\nNotification\n`,
    );
  });

  test('Notification without Subject leaves it out (also when null)', () => {
    const { Subject: _, ...rest } = notification();
    expect(stringToSign(rest)).not.toContain('Subject');
    expect(stringToSign({ ...rest, Subject: null })).not.toContain('Subject');
  });

  test('SubscriptionConfirmation signs SubscribeURL and Token, and requires them', () => {
    const { Subject: _, ...env } = notification({
      Type: 'SubscriptionConfirmation',
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription',
      Token: 'tok',
      Timestamp: '2025-03-01T10:00:00.000Z',
    });
    expect(stringToSign(env)).toBe(
      `Message\n{"AlarmName":"cpu-high"}\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription\nTimestamp\n2025-03-01T10:00:00.000Z\nToken\ntok\nTopicArn\n${TOPIC}\nType\nSubscriptionConfirmation\n`,
    );
    const { Token: _token, ...noToken } = env;
    expect(() => stringToSign(noToken)).toThrow(/lacks Token/);
  });
});

describe('signing certificate URL', () => {
  test.each([
    CERT_URL,
    'https://sns.eu-central-1.amazonaws.com/x.pem',
    'https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem',
    'https://sns.us-gov-west-1.amazonaws.com/a.pem',
  ])('accepts %s', (url) => expect(checkSigningCertUrl(url).hostname).toMatch(/^sns\./));

  test.each([
    'http://sns.us-east-1.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.com.evil.example/x.pem',
    'https://evilsns.us-east-1.amazonaws.com/x.pem',
    'https://sns.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.com:8443/x.pem',
    'https://user:pw@sns.us-east-1.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.com/x.txt',
    'https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/x.pem',
    // An S3 bucket named "sns": anyone can own it, and S3's certificate is valid for it.
    'https://sns.s3.amazonaws.com/x.pem',
    'https://sns.s3-us-west-2.amazonaws.com/x.pem',
    'https://sns.s3.eu-west-1.amazonaws.com/x.pem',
    'https://SNS.US-EAST-1.AMAZONAWS.COM.attacker.io/x.pem',
    'not a url',
    '',
  ])('refuses %s', (url) => {
    expect(() => checkSigningCertUrl(url)).toThrow(IntakeError);
  });
});

describe('SnsVerifier', () => {
  const verifier = new SnsVerifier({ certificates: fixedSource, allowedTopics: new Set([TOPIC]) });

  test('accepts signature versions 1 (SHA1withRSA) and 2 (SHA256withRSA)', async () => {
    await expect(verifier.verify(signed(notification(), '1'))).resolves.toBeUndefined();
    await expect(verifier.verify(signed(notification(), '2'))).resolves.toBeUndefined();
  });

  test('refuses a tampered message, subject or timestamp', async () => {
    for (const change of [
      { Message: '{"AlarmName":"other"}' },
      { Subject: 'changed' },
      { Timestamp: new Date(Date.now() + 1_000).toISOString() },
      { MessageId: 'x' },
    ]) {
      const e = await refusal(verifier.verify({ ...signed(notification()), ...change }));
      expect(e.status).toBe(403);
      expect(e.message).toMatch(/signature does not verify/);
    }
  });

  test('refuses a message claiming the other signature version', async () => {
    const env = signed(notification(), '1');
    expect((await refusal(verifier.verify({ ...env, SignatureVersion: '2' }))).status).toBe(403);
    expect((await refusal(verifier.verify({ ...env, SignatureVersion: '3' }))).message).toMatch(/not supported/);
  });

  test('refuses a message signed by another key', async () => {
    const other = selfSignedSnsCertificate();
    expect((await refusal(verifier.verify(signed(notification(), '2', other.key)))).status).toBe(403);
  });

  test('refuses a topic that is not allowlisted before fetching any certificate', async () => {
    let fetched = 0;
    const v = new SnsVerifier({ certificates: { get: async () => (fetched++, x509) }, allowedTopics: new Set([TOPIC]) });
    const e = await refusal(v.verify(signed(notification({ TopicArn: 'arn:aws:sns:us-east-1:123456789012:other' }))));
    expect(e.status).toBe(403);
    expect(e.message).toMatch(/--sns-topic-allowlist/);
    expect(fetched).toBe(0);
  });

  test('refuses an unsigned message', async () => {
    const { Signature: _, ...unsigned } = signed(notification());
    expect((await refusal(verifier.verify(unsigned))).message).toMatch(/unsigned/);
    expect((await refusal(verifier.verify({ ...notification() }))).status).toBe(403);
  });

  test('refuses a certificate from a foreign host even when it would verify', async () => {
    const env = signed(notification());
    expect((await refusal(verifier.verify({ ...env, SigningCertURL: 'https://attacker.example/cert.pem' }))).status).toBe(403);
  });

  test('refuses an expired certificate', async () => {
    const v = new SnsVerifier({ certificates: fixedSource, allowedTopics: new Set([TOPIC]), now: () => Date.now() + 10 * 86_400_000 });
    expect((await refusal(v.verify(signed(notification())))).message).toMatch(/not valid now/);
  });

  test('a certificate that cannot be had: 403 when permanent, 503 when transient (SNS retries)', async () => {
    const permanent = new SnsVerifier({
      certificates: { get: async () => Promise.reject(new CertificateUnavailableError('404', true)) },
      allowedTopics: new Set([TOPIC]),
    });
    expect((await refusal(permanent.verify(signed(notification())))).status).toBe(403);
    const transient = new SnsVerifier({
      certificates: { get: async () => Promise.reject(new CertificateUnavailableError('reset', false)) },
      allowedTopics: new Set([TOPIC]),
    });
    expect((await refusal(transient.verify(signed(notification())))).status).toBe(503);
  });
});

describe('replay window (signed Timestamp of a Notification)', () => {
  const now = Date.parse('2025-03-01T12:00:00.000Z');
  const at = (offsetMs: number) => new Date(now + offsetMs).toISOString();

  test('accepts a Timestamp within the window before now, and a little clock skew after it', () => {
    for (const t of [at(0), at(-SNS_REPLAY_WINDOW_MS), at(-59 * 60_000), at(SNS_MAX_CLOCK_SKEW_MS), at(4 * 60_000)])
      expect(() => checkTimestamp(t, now)).not.toThrow();
  });

  test('refuses one older than the window with a 4xx that says it is too old (SNS then drops it)', () => {
    for (const t of [at(-SNS_REPLAY_WINDOW_MS - 1), at(-61 * 60_000), '2025-02-01T00:00:00.000Z']) {
      const e = (() => {
        try {
          checkTimestamp(t, now);
        } catch (error) {
          return error as IntakeError;
        }
        throw new Error(`accepted ${t}`);
      })();
      expect(e).toBeInstanceOf(IntakeError);
      expect(e.status).toBe(403);
      expect(e.message).toMatch(/too old/);
    }
  });

  test('refuses one more than a few minutes in the future, and one that is not a time', () => {
    expect(() => checkTimestamp(at(SNS_MAX_CLOCK_SKEW_MS + 1), now)).toThrow(/in the future/);
    expect(() => checkTimestamp('yesterday', now)).toThrow(/not a timestamp/);
  });

  test('the verifier refuses a correctly signed but old Notification; an old confirmation is still checked only for its signature', async () => {
    const v = new SnsVerifier({ certificates: fixedSource, allowedTopics: new Set([TOPIC]) });
    const old = new Date(Date.now() - SNS_REPLAY_WINDOW_MS - 60_000).toISOString();
    const e = await refusal(v.verify(signed(notification({ Timestamp: old }))));
    expect(e.status).toBe(403);
    expect(e.message).toMatch(/SNS message is too old/);
    const future = new Date(Date.now() + SNS_MAX_CLOCK_SKEW_MS + 60_000).toISOString();
    expect((await refusal(v.verify(signed(notification({ Timestamp: future }))))).message).toMatch(/in the future/);
    const { Subject: _, ...confirmation } = notification({
      Type: 'SubscriptionConfirmation',
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription',
      Token: 'tok',
      Timestamp: old,
    });
    await expect(v.verify(signed(confirmation))).resolves.toBeUndefined();
  });
});

describe('HttpsCertificateSource', () => {
  const url = new URL(CERT_URL);
  const response = (status: number, body: string) => new Response(body, { status });

  test('fetches once, shares concurrent fetches and caches the certificate', async () => {
    let calls = 0;
    const source = new HttpsCertificateSource({ fetch: async () => (calls++, response(200, cert)) });
    const [a, b] = await Promise.all([source.get(url), source.get(url)]);
    await source.get(url);
    expect(a.fingerprint256).toBe(x509.fingerprint256);
    expect(b).toBe(a);
    expect(calls).toBe(1);
  });

  test('does not cache a transient failure, caches a permanent one', async () => {
    let calls = 0;
    const flaky = new HttpsCertificateSource({ fetch: async () => (++calls === 1 ? response(503, '') : response(200, cert)) });
    await expect(flaky.get(url)).rejects.toMatchObject({ permanent: false });
    await expect(flaky.get(url)).resolves.toBeInstanceOf(X509Certificate);
    let missing = 0;
    const gone = new HttpsCertificateSource({ fetch: async () => (missing++, response(404, '')) });
    await expect(gone.get(url)).rejects.toMatchObject({ permanent: true });
    await expect(gone.get(url)).rejects.toMatchObject({ permanent: true });
    expect(missing).toBe(1);
  });

  test('a certificate that verified a message is never evicted by unverified URLs', async () => {
    const fetched: string[] = [];
    const source = new HttpsCertificateSource({
      maxEntries: 4,
      fetch: async (u) => (fetched.push(u), u === CERT_URL ? response(200, cert) : response(404, '')),
    });
    const verifier = new SnsVerifier({ certificates: source, allowedTopics: new Set([TOPIC]) });
    await verifier.verify(signed(notification()));
    expect(fetched).toEqual([CERT_URL]);
    // A stranger posts messages for the allowlisted topic naming many distinct bogus URLs:
    // each costs one fetch and is refused, and each goes into the small unverified cache.
    for (let i = 0; i < 50; i++) {
      const e = await refusal(
        verifier.verify({ ...signed(notification()), SigningCertURL: `https://sns.us-east-1.amazonaws.com/bogus-${i}.pem` }),
      );
      expect(e.status).toBe(403);
    }
    expect(fetched).toHaveLength(51);
    // The real certificate is still cached: the next genuine message costs no fetch.
    await verifier.verify(signed(notification()));
    expect(fetched.filter((u) => u === CERT_URL)).toHaveLength(1);
  });

  test('verified certificates are kept in their own LRU: the least recently used of them goes first', async () => {
    const fetched: string[] = [];
    const source = new HttpsCertificateSource({ maxVerified: 2, fetch: async (u) => (fetched.push(u), response(200, cert)) });
    const urls = ['a', 'b', 'c'].map((n) => new URL(`https://sns.us-east-1.amazonaws.com/${n}.pem`));
    for (const u of urls.slice(0, 2)) source.verified(u, await source.get(u));
    await source.get(urls[0]!); // a is now more recently used than b
    source.verified(urls[2]!, await source.get(urls[2]!)); // evicts b, not a
    fetched.length = 0;
    await source.get(urls[0]!);
    await source.get(urls[2]!);
    expect(fetched).toEqual([]);
    await source.get(urls[1]!);
    expect(fetched).toEqual([urls[1]!.href]);
  });

  test('caps concurrent fetches: beyond the cap a miss is refused as transient (the verifier answers 503, SNS retries)', async () => {
    const pending: Array<() => void> = [];
    let calls = 0;
    const source = new HttpsCertificateSource({
      maxConcurrentFetches: 2,
      fetch: () => (calls++, new Promise<Response>((resolve) => pending.push(() => resolve(response(200, cert))))),
    });
    const slow = [
      source.get(new URL('https://sns.us-east-1.amazonaws.com/1.pem')),
      source.get(new URL('https://sns.us-east-1.amazonaws.com/2.pem')),
    ];
    // The same URL shares the fetch in flight and is not refused.
    const shared = source.get(new URL('https://sns.us-east-1.amazonaws.com/1.pem'));
    // Refused at once (not queued behind the fetches in flight).
    let timer: NodeJS.Timeout | undefined;
    const beyond = await Promise.race([
      source.get(new URL('https://sns.us-east-1.amazonaws.com/3.pem')).catch((e: unknown) => e),
      new Promise((r) => (timer = setTimeout(() => r('still pending'), 500))),
    ]);
    clearTimeout(timer);
    expect(beyond).toBeInstanceOf(CertificateUnavailableError);
    expect(beyond).toMatchObject({ permanent: false, message: expect.stringMatching(/too many/) });
    expect(calls).toBe(2);
    const verifier = new SnsVerifier({ certificates: source, allowedTopics: new Set([TOPIC]) });
    const e = await refusal(verifier.verify({ ...signed(notification()), SigningCertURL: 'https://sns.us-east-1.amazonaws.com/4.pem' }));
    expect(e.status).toBe(503);
    expect(pending).toHaveLength(2);
    for (const p of pending) p();
    await Promise.all([...slow, shared]);
    // Slots free again once the fetches are done.
    const next = source.get(new URL('https://sns.us-east-1.amazonaws.com/3.pem'));
    pending[2]!();
    await expect(next).resolves.toBeInstanceOf(X509Certificate);
  });

  test('refuses a body that is not a certificate', async () => {
    const source = new HttpsCertificateSource({ fetch: async () => response(200, 'hello') });
    await expect(source.get(url)).rejects.toMatchObject({ permanent: true });
  });
});

describe('SubscribeURL', () => {
  const good = `https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=abc`;

  test('must be https on an SNS host, confirming the same topic', () => {
    expect(checkSubscribeUrl(good, TOPIC, strictConfirmUrlPolicy).hostname).toBe('sns.us-east-1.amazonaws.com');
    for (const bad of [
      good.replace('https:', 'http:'),
      good.replace('sns.us-east-1.amazonaws.com', '127.0.0.1'),
      good.replace('sns.us-east-1.amazonaws.com', 'sns.us-east-1.amazonaws.com.evil.example'),
      good.replace('ConfirmSubscription', 'Unsubscribe'),
      good.replace(encodeURIComponent(TOPIC), encodeURIComponent(`${TOPIC}-other`)),
    ]) {
      expect(() => checkSubscribeUrl(bad, TOPIC, strictConfirmUrlPolicy)).toThrow(IntakeError);
    }
    expect(() => checkSubscribeUrl(undefined, TOPIC, strictConfirmUrlPolicy)).toThrow(/no valid SubscribeURL/);
  });
});
