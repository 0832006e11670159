/**
 * Trust for SNS HTTP(S) deliveries, checked before anything in a message is believed:
 *
 * 1. the topic must be allowlisted (`--sns-topic-allowlist`) — checked first, so a
 *    stranger's message never makes us fetch anything;
 * 2. the message must be signed, with SignatureVersion 1 (SHA1withRSA) or 2
 *    (SHA256withRSA);
 * 3. the signing certificate URL must be `https://sns.<region>.amazonaws.com[.cn]/...pem`
 *    — a certificate from anywhere else proves nothing;
 * 4. the signature must verify, with that certificate's RSA key, over AWS's canonical
 *    string to sign (the fields below, `Name\nvalue\n`, in this order);
 * 5. a Notification's signed `Timestamp` must be recent (SNS_REPLAY_WINDOW_MS): a
 *    signature never expires, so without this anyone who once saw a message (a proxy
 *    log, a leaked capture) could replay it — an old `OK` or `ALARM` — forever.
 *
 * Certificates come through a `CertificateSource`, cached; production fetches them over
 * HTTPS (TLS to an AWS host is what makes the certificate trustworthy), tests inject
 * their own. The route is unauthenticated, so the cache is built to withstand strangers
 * (see HttpsCertificateSource). Subscription confirmation GETs the SubscribeURL only after all of the
 * above, and only when it points back to SNS for the same topic.
 */
import { X509Certificate, verify as verifySignature } from 'node:crypto';
import { IntakeError } from './errors.js';
import type { SnsEnvelope } from './schemas.js';

/**
 * An SNS endpoint of a region (`sns.eu-west-1.amazonaws.com`, `sns.cn-north-1.amazonaws.com.cn`,
 * `sns.us-gov-west-1.amazonaws.com`). Region-shaped on purpose: a looser
 * `sns.<anything>.amazonaws.com` also matches `sns.s3.amazonaws.com`, an S3 bucket named
 * "sns" that anyone could own, with a certificate valid for that name.
 */
export const SNS_HOST = /^sns\.[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}\.amazonaws\.com(\.cn)?$/;
export const SNS_TOPIC_ARN = /^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;
export const SNS_MESSAGE_TYPES = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'] as const;
export type SnsMessageType = (typeof SNS_MESSAGE_TYPES)[number];

const SIGNED_FIELDS: Record<SnsMessageType, ReadonlyArray<keyof SnsEnvelope>> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

export function isSnsMessageType(t: string): t is SnsMessageType {
  return (SNS_MESSAGE_TYPES as readonly string[]).includes(t);
}

/**
 * AWS's canonical string to sign: each field that applies to the message type, as
 * `Name\nvalue\n`, in byte order of the names. `Subject` counts only when present;
 * every other field is required, and its absence is a malformed message.
 */
export function stringToSign(env: SnsEnvelope): string {
  if (!isSnsMessageType(env.Type)) throw new IntakeError(400, `unknown SNS message Type ${JSON.stringify(env.Type)}`);
  let out = '';
  for (const field of SIGNED_FIELDS[env.Type]) {
    const value = env[field];
    if (value === undefined || value === null) {
      if (field === 'Subject') continue;
      throw new IntakeError(400, `invalid SNS message: ${env.Type} lacks ${field}`);
    }
    out += `${field}\n${String(value)}\n`;
  }
  return out;
}

/** Throws 403 unless `raw` is an https URL on an SNS host of AWS, for a .pem file. */
export function checkSigningCertUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new IntakeError(403, 'SigningCertURL is not a URL; refusing an SNS message whose signature cannot be checked');
  }
  if (
    url.protocol !== 'https:' ||
    !SNS_HOST.test(url.hostname) ||
    url.port !== '' ||
    url.username !== '' ||
    url.password !== '' ||
    !url.pathname.endsWith('.pem')
  ) {
    throw new IntakeError(
      403,
      `SigningCertURL ${JSON.stringify(raw.slice(0, 256))} is not an SNS certificate (https://sns.<region>.amazonaws.com/...pem); refusing the message`,
    );
  }
  return url;
}

/**
 * How old a Notification's signed `Timestamp` may be. SNS keeps a message's Timestamp
 * across its delivery retries, and its default HTTP(S) delivery policy gives up within
 * about a minute (3 retries 20 s apart); an hour leaves room for custom retry policies
 * and an outage of ours, while bounding how long a captured message can be replayed.
 * (Re-deliveries within the window are harmless: creates are idempotent by name and a
 * resolution only ends occurrences that started before it.)
 */
export const SNS_REPLAY_WINDOW_MS = 60 * 60_000;
/** How far in the future a signed `Timestamp` may be: clock skew between AWS and us, no more. */
export const SNS_MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** Where signing certificates come from. Production: HTTPS with a cache; tests: their own. */
export interface CertificateSource {
  /** Resolves the certificate at `url`, or rejects with CertificateUnavailableError. */
  get(url: URL): Promise<X509Certificate>;
  /** Told when `cert`, got from `url`, verified a message: worth keeping (see HttpsCertificateSource). */
  verified?(url: URL, cert: X509Certificate): void;
}

/** The certificate could not be had: `permanent` for a 4xx/invalid certificate (the sender's problem), else a fault on our side or the network's. */
export class CertificateUnavailableError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'CertificateUnavailableError';
  }
}

export type Fetch = (url: string, init: { signal: AbortSignal; redirect: 'error' }) => Promise<Response>;

export interface HttpsCertificateSourceOptions {
  fetch?: Fetch;
  timeoutMs?: number;
  ttlMs?: number;
  /** Entries of the cache of certificates (and permanent failures) not yet known good. */
  maxEntries?: number;
  /** Certificates that verified a message, kept apart (LRU). */
  maxVerified?: number;
  /** Certificate fetches in flight at once; beyond it a miss is refused (503, SNS retries). */
  maxConcurrentFetches?: number;
  now?: () => number;
}

/**
 * Fetches certificates over HTTPS and caches them (AWS rotates the signing certificate
 * rarely, and its URL names it). Concurrent requests for one URL share a fetch;
 * permanent failures are remembered briefly so a burst of bad messages costs one fetch.
 *
 * Anyone can post to the SNS route with any SigningCertURL on an SNS host, so each
 * distinct URL for an allowlisted topic costs an outbound fetch before its signature can
 * be checked. Two rules keep a stranger from turning that against us:
 * - a certificate that verified a message moves to a small LRU of its own, which
 *   unverified URLs never enter, so no number of bogus URLs evicts the real certificate
 *   (AWS uses one or two at a time; it stays until other *verified* ones push it out);
 * - at most `maxConcurrentFetches` fetches run at once; a miss beyond that is refused
 *   as transient (503: SNS delivers again later) instead of queueing outbound calls.
 * Verified certificates do not expire from the cache: their URL names one certificate,
 * and its validity dates are checked against every message anyway.
 */
export class HttpsCertificateSource implements CertificateSource {
  private readonly cache = new Map<string, { at: number; value: Promise<X509Certificate> }>();
  private readonly verifiedCerts = new Map<string, X509Certificate>();
  private readonly fetch: Fetch;
  private readonly timeoutMs: number;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly maxVerified: number;
  private readonly maxConcurrentFetches: number;
  private readonly now: () => number;
  private fetching = 0;

  constructor(opts: HttpsCertificateSourceOptions = {}) {
    this.fetch = opts.fetch ?? ((url, init) => fetch(url, init));
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.ttlMs = opts.ttlMs ?? 60 * 60_000;
    this.maxEntries = opts.maxEntries ?? 64;
    this.maxVerified = opts.maxVerified ?? 8;
    this.maxConcurrentFetches = opts.maxConcurrentFetches ?? 4;
    this.now = opts.now ?? Date.now;
  }

  get(url: URL): Promise<X509Certificate> {
    const key = url.href;
    const good = this.verifiedCerts.get(key);
    if (good) {
      // Most recently used last.
      this.verifiedCerts.delete(key);
      this.verifiedCerts.set(key, good);
      return Promise.resolve(good);
    }
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.value;
    if (this.fetching >= this.maxConcurrentFetches) {
      return Promise.reject(
        new CertificateUnavailableError(
          `too many SNS signing certificates are being fetched at once (${this.maxConcurrentFetches})`,
          false,
        ),
      );
    }
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.fetching++;
    const value = this.load(key).finally(() => this.fetching--);
    this.cache.set(key, { at: this.now(), value });
    // A transient failure must not be cached: the next message tries again.
    value.catch((error: unknown) => {
      if (!(error instanceof CertificateUnavailableError && error.permanent) && this.cache.get(key)?.value === value)
        this.cache.delete(key);
    });
    return value;
  }

  /** Keeps `cert` in the verified LRU: it proved itself by verifying a message. */
  verified(url: URL, cert: X509Certificate): void {
    const key = url.href;
    this.cache.delete(key);
    this.verifiedCerts.delete(key);
    this.verifiedCerts.set(key, cert);
    if (this.verifiedCerts.size > this.maxVerified) this.verifiedCerts.delete(this.verifiedCerts.keys().next().value!);
  }

  private async load(url: string): Promise<X509Certificate> {
    let res: Response;
    try {
      res = await this.fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), redirect: 'error' });
    } catch (error) {
      throw new CertificateUnavailableError(`could not fetch the SNS signing certificate ${url}: ${(error as Error).message}`, false);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new CertificateUnavailableError(
        `fetching the SNS signing certificate ${url} answered HTTP ${res.status}`,
        res.status >= 400 && res.status < 500,
      );
    }
    const pem = await res.text();
    if (pem.length > 64 * 1024) throw new CertificateUnavailableError(`the SNS signing certificate at ${url} is implausibly large`, true);
    try {
      return new X509Certificate(pem);
    } catch (error) {
      throw new CertificateUnavailableError(`the SNS signing certificate at ${url} does not parse: ${(error as Error).message}`, true);
    }
  }
}

export interface SnsVerifierOptions {
  certificates: CertificateSource;
  allowedTopics: ReadonlySet<string>;
  now?: () => number;
}

/** Applies checks 1–5 (see the file comment); resolves only for a message that passed all of them. */
export class SnsVerifier {
  private readonly now: () => number;

  constructor(private readonly opts: SnsVerifierOptions) {
    this.now = opts.now ?? Date.now;
  }

  async verify(env: SnsEnvelope): Promise<void> {
    if (!this.opts.allowedTopics.has(env.TopicArn)) {
      throw new IntakeError(
        403,
        this.opts.allowedTopics.size === 0
          ? `SNS topic ${env.TopicArn.slice(0, 300)} is not allowed: no topics are allowlisted; add it to --sns-topic-allowlist`
          : `SNS topic ${env.TopicArn.slice(0, 300)} is not allowed; add it to --sns-topic-allowlist`,
        'forbidden',
      );
    }
    if (env.Signature === undefined || env.SignatureVersion === undefined || env.SigningCertURL === undefined || env.Signature === '') {
      throw new IntakeError(
        403,
        'unsigned SNS message refused: Signature, SignatureVersion and SigningCertURL are required (raw message delivery cannot be used with this endpoint)',
      );
    }
    const algorithm = env.SignatureVersion === '1' ? 'RSA-SHA1' : env.SignatureVersion === '2' ? 'RSA-SHA256' : undefined;
    if (!algorithm) throw new IntakeError(403, `SNS SignatureVersion ${JSON.stringify(env.SignatureVersion)} is not supported (1 or 2)`);
    const certUrl = checkSigningCertUrl(env.SigningCertURL);
    const data = Buffer.from(stringToSign(env), 'utf8');
    const signature = Buffer.from(env.Signature, 'base64');
    let cert: X509Certificate;
    try {
      cert = await this.opts.certificates.get(certUrl);
    } catch (error) {
      if (error instanceof CertificateUnavailableError && error.permanent)
        throw new IntakeError(403, `${error.message}; refusing the message`);
      // Our side could not check it: 503 makes SNS deliver again later.
      throw new IntakeError(503, `${(error as Error).message}; SNS will retry the delivery`, 'unavailable', undefined, {
        'retry-after': '10',
      });
    }
    const now = this.now();
    if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) {
      throw new IntakeError(
        403,
        `the SNS signing certificate at ${certUrl.href} is not valid now (valid ${cert.validFrom} to ${cert.validTo}); refusing the message`,
      );
    }
    if (cert.publicKey.asymmetricKeyType !== 'rsa')
      throw new IntakeError(403, 'the SNS signing certificate does not hold an RSA key; refusing the message');
    let ok = false;
    try {
      ok = verifySignature(algorithm, data, cert.publicKey, signature);
    } catch {
      ok = false;
    }
    if (!ok) throw new IntakeError(403, 'SNS message signature does not verify: the message was altered or not signed by SNS; refusing it');
    this.opts.certificates.verified?.(certUrl, cert);
    // After the signature, so the Timestamp judged is one SNS signed. Notifications only:
    // they are what acts on alerts; a replayed confirmation can only re-confirm.
    if (env.Type === 'Notification') checkTimestamp(env.Timestamp, now);
  }
}

/**
 * 403 unless a Notification's signed `Timestamp` lies within SNS_REPLAY_WINDOW_MS before
 * `now` and SNS_MAX_CLOCK_SKEW_MS after it. A 4xx on purpose: SNS drops the message
 * rather than retrying what can never become acceptable.
 */
export function checkTimestamp(timestamp: string, now: number): void {
  const at = Date.parse(timestamp);
  if (Number.isNaN(at)) throw new IntakeError(400, `SNS message Timestamp ${JSON.stringify(timestamp.slice(0, 64))} is not a timestamp`);
  if (now - at > SNS_REPLAY_WINDOW_MS) {
    throw new IntakeError(
      403,
      `SNS message is too old: it was published at ${timestamp.slice(0, 64)}, more than ${SNS_REPLAY_WINDOW_MS / 60_000} minutes ago; refusing it as a possible replay (check this host's clock if SNS delivered it just now)`,
    );
  }
  if (at - now > SNS_MAX_CLOCK_SKEW_MS) {
    throw new IntakeError(
      403,
      `SNS message Timestamp ${timestamp.slice(0, 64)} is more than ${SNS_MAX_CLOCK_SKEW_MS / 60_000} minutes in the future; refusing it (check this host's clock)`,
    );
  }
}

/**
 * Whether a SubscribeURL may be visited. Production: https to an SNS host of AWS only
 * (so a forged confirmation can never make the controller call an arbitrary URL); tests
 * inject their own to serve a local one.
 */
export type ConfirmUrlPolicy = (url: URL) => boolean;

export const strictConfirmUrlPolicy: ConfirmUrlPolicy = (url) =>
  url.protocol === 'https:' && SNS_HOST.test(url.hostname) && url.port === '' && url.username === '' && url.password === '';

/** Checks the SubscribeURL of a verified confirmation and returns it; 403 when it does not point back to SNS for this topic. */
export function checkSubscribeUrl(raw: string | undefined, topicArn: string, policy: ConfirmUrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw ?? '');
  } catch {
    throw new IntakeError(400, 'SubscriptionConfirmation has no valid SubscribeURL');
  }
  if (!policy(url))
    throw new IntakeError(403, `SubscribeURL ${JSON.stringify(url.href.slice(0, 256))} is not an SNS endpoint of AWS; not confirming`);
  if (url.searchParams.get('Action') !== 'ConfirmSubscription' || url.searchParams.get('TopicArn') !== topicArn) {
    throw new IntakeError(403, 'SubscribeURL does not confirm a subscription to the topic the message names; not confirming');
  }
  return url;
}
