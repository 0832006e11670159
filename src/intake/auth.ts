/**
 * Bearer token authentication for the Alertmanager and generic endpoints, with the token
 * kept in a Kubernetes Secret (`--intake-token-secret namespace/name`, key `token`).
 *
 * - The Secret is re-read when the cached value is older than a short TTL, and also at
 *   once (at most once per second) when a presented token does not match: a rotated
 *   token works immediately and the old one stops working within the TTL — no restart.
 * - Comparison is constant time: both sides are hashed to equal-length SHA-256 digests
 *   and compared with `timingSafeEqual`, so neither content nor length leaks.
 * - While the API server is unreachable the last token read keeps working (bounded by
 *   `staleGraceMs`); a deleted Secret or one without the key fails closed (503).
 * - The token is never logged, and never put into an error message.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { IntakeError } from './errors.js';
import type { IntakeKubeApi } from './kube.js';
import { describeError, withRetry } from './retry.js';

export const TOKEN_KEY = 'token';
export const MIN_TOKEN_LENGTH = 16;

export interface SecretRef {
  namespace: string;
  name: string;
}

export interface BearerAuthOptions {
  kube: Pick<IntakeKubeApi, 'readSecretValue'>;
  secret: SecretRef | undefined;
  logger: Logger;
  /** Re-read the Secret when the cached token is older than this. */
  ttlMs?: number;
  /** On a mismatch, re-read at most this often (a wrong token must not hammer the API server). */
  minRefreshMs?: number;
  /** How long a token read before an API outage keeps working. */
  staleGraceMs?: number;
  /** Time allowed for one read of the Secret, retries included. */
  readBudgetMs?: number;
  now?: () => number;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** The token in `Authorization: Bearer <token>`, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header ?? '');
  return m?.[1];
}

export class BearerAuthenticator {
  private cached: { digest: Buffer; at: number } | undefined;
  private lastRead = Number.NEGATIVE_INFINITY;
  private lastError: IntakeError | undefined;
  private reading: Promise<void> | undefined;
  private readonly ttlMs: number;
  private readonly minRefreshMs: number;
  private readonly staleGraceMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: BearerAuthOptions) {
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.minRefreshMs = opts.minRefreshMs ?? 1_000;
    this.staleGraceMs = opts.staleGraceMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  private get secretName(): string {
    return this.opts.secret ? `${this.opts.secret.namespace}/${this.opts.secret.name}` : '';
  }

  /** Resolves when `header` carries the current token; throws 401 (wrong/missing) or 503 (we cannot tell). */
  async authenticate(header: string | undefined): Promise<void> {
    if (!this.opts.secret) {
      throw new IntakeError(
        503,
        'this endpoint needs a bearer token but none is configured: start the controller with --intake-token-secret <namespace>/<name> (a Secret with key "token")',
        'unavailable',
      );
    }
    const presented = bearerToken(header);
    if (presented === undefined) {
      throw new IntakeError(
        401,
        `missing bearer token: send "Authorization: Bearer <token>" with the token from Secret ${this.secretName} (key "${TOKEN_KEY}")`,
        'unauthorized',
        undefined,
        {
          'www-authenticate': 'Bearer realm="remediator-intake"',
        },
      );
    }
    const got = digest(presented);
    await this.ensureCurrent();
    if (this.matches(got)) return;
    // Perhaps the Secret was just rotated: look again, but not more than once a second.
    if (this.now() - this.lastRead >= this.minRefreshMs) {
      await this.refresh();
      if (this.matches(got)) return;
    }
    throw new IntakeError(
      401,
      `invalid bearer token: it does not match the token in Secret ${this.secretName} (key "${TOKEN_KEY}")`,
      'unauthorized',
      undefined,
      {
        'www-authenticate': 'Bearer realm="remediator-intake", error="invalid_token"',
      },
    );
  }

  private async ensureCurrent(): Promise<void> {
    if (this.cached && this.now() - this.cached.at < this.ttlMs) return;
    if (this.now() - this.lastRead < this.minRefreshMs) {
      // Read a moment ago: reuse its result rather than asking again on every request.
      if (this.cached) return;
      if (this.lastError) throw this.lastError;
    }
    await this.refresh();
  }

  private matches(got: Buffer): boolean {
    const want = this.cached?.digest;
    return want !== undefined && timingSafeEqual(got, want);
  }

  private refresh(): Promise<void> {
    // One read at a time; concurrent requests wait for the same answer.
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async read(): Promise<void> {
    const { namespace, name } = this.opts.secret!;
    this.lastRead = this.now();
    let value: string | undefined;
    try {
      value = await withRetry(`read Secret ${this.secretName}`, () => this.opts.kube.readSecretValue(namespace, name, TOKEN_KEY), {
        budgetMs: this.opts.readBudgetMs ?? 2_000,
        callTimeoutMs: this.opts.readBudgetMs ?? 2_000,
      });
    } catch (error) {
      if (this.cached && this.now() - this.cached.at < this.staleGraceMs) {
        this.opts.logger.warn(
          { secret: this.secretName, err: describeError(error) },
          'could not re-read the intake token Secret; still accepting the token read before',
        );
        return;
      }
      this.cached = undefined;
      throw this.fail(
        new IntakeError(
          503,
          `cannot read the intake token Secret ${this.secretName} (${describeError(error)}); check the API server, and that the controller may get this Secret`,
          'unavailable',
          undefined,
          { 'retry-after': '5' },
        ),
      );
    }
    // Tokens never contain whitespace; a trailing newline from `kubectl create secret --from-file` is not part of it.
    const token = value?.trim();
    if (!token || token.length < MIN_TOKEN_LENGTH) {
      this.cached = undefined;
      const why =
        value === undefined ? `does not exist or has no key "${TOKEN_KEY}"` : `holds a token shorter than ${MIN_TOKEN_LENGTH} characters`;
      this.opts.logger.error({ secret: this.secretName }, `intake token Secret ${why}`);
      throw this.fail(
        new IntakeError(
          503,
          `the intake token Secret ${this.secretName} ${why}; create it, e.g. kubectl create secret generic ${name} -n ${namespace} --from-literal=${TOKEN_KEY}=$(openssl rand -hex 32)`,
          'unavailable',
        ),
      );
    }
    this.cached = { digest: digest(token), at: this.now() };
    this.lastError = undefined;
  }

  private fail(error: IntakeError): IntakeError {
    this.lastError = error;
    return error;
  }
}
