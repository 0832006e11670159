/**
 * Credentials for the cloud layer. The base is the SDK's default chain (IRSA's web
 * identity, or Pod Identity); a runbook in another account gets credentials from STS
 * `AssumeRole` chained from that base (the SDK's `fromTemporaryCredentials`), with the
 * runbook's external id and session tags naming the request's namespace and policy.
 *
 * Each SDK client already memoizes a credential provider and refreshes it 5 minutes
 * before expiry (`memoizeIdentityProvider` in @smithy/core, used by @aws-sdk/core's
 * `resolveAwsSdkSigV4Config`). A location has five clients, and one role session serves
 * several regions, so `RefreshingCredentials` memoizes once more in front of them with
 * the same rule: one `AssumeRole` per session and refresh, not one per client.
 */
import { type fromNodeProviderChain, fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import type { Clock } from '../runtime/clock.js';
import { systemClock } from '../runtime/clock.js';
import { awsErrorName, callOutcome } from './errors.js';
import { AwsAssumeRoleDeniedError, roleSessionName, type AwsLocation } from './location.js';

export type CredentialProvider = ReturnType<typeof fromNodeProviderChain>;
export type Credentials = Awaited<ReturnType<CredentialProvider>>;

/** As the SDK's own clients do: credentials expiring within this window are fetched again. */
export const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;

/** Memoizes a credential fetch, refreshing it `refreshBeforeMs` before expiry; concurrent callers share one fetch. */
export class RefreshingCredentials {
  private current: Credentials | undefined;
  private inflight: Promise<Credentials> | undefined;

  constructor(
    private readonly fetch: () => Promise<Credentials>,
    private readonly clock: Clock = systemClock,
    private readonly refreshBeforeMs = REFRESH_BEFORE_EXPIRY_MS,
  ) {}

  /** A provider for an SDK client's `credentials`. */
  readonly provide = (): Promise<Credentials> => {
    const c = this.current;
    if (c && (!c.expiration || c.expiration.getTime() - this.clock.now() > this.refreshBeforeMs)) return Promise.resolve(c);
    // A failed fetch is not cached: the next call asks STS again, so a fixed trust policy takes effect at once.
    this.inflight ??= this.fetch().then(
      (fresh) => {
        this.current = fresh;
        this.inflight = undefined;
        return fresh;
      },
      (error: unknown) => {
        this.inflight = undefined;
        throw error;
      },
    );
    return this.inflight;
  };
}

const ACCESS_DENIED_ON_ASSUME = new Set(['AccessDenied', 'AccessDeniedException']);

export interface AssumeRoleOptions {
  /** Credentials to assume from: the controller's own. */
  base: CredentialProvider;
  /** Region of the STS endpoint: the controller's own (its STS VPC endpoint), whatever region the role is used in. */
  stsRegion: string | undefined;
  /** Asked of STS; AWS allows 900 s to the role's maximum session duration. */
  durationSeconds?: number;
  clock?: Clock;
  onCall?: (operation: string, outcome: string) => void;
}

/**
 * Assumed-role credentials for `loc` (which must name a role). The STS client is the
 * SDK's, so `AWS_ENDPOINT_URL_STS` (or `AWS_ENDPOINT_URL`) applies to it as to any other
 * client. A denied `AssumeRole` becomes an `AwsAssumeRoleDeniedError` naming the role:
 * without that, the error would surface from, say, DescribeInstances, and be reported
 * as a missing ec2 permission.
 */
export function assumedRoleCredentials(loc: AwsLocation, opts: AssumeRoleOptions): RefreshingCredentials {
  const roleArn = loc.roleArn;
  if (!roleArn) throw new Error('assumedRoleCredentials needs a location with a roleArn');
  const tags = Object.entries(loc.sessionTags ?? {}).map(([Key, Value]) => ({ Key, Value }));
  const assume = fromTemporaryCredentials({
    masterCredentials: opts.base,
    params: {
      RoleArn: roleArn,
      RoleSessionName: roleSessionName(loc),
      DurationSeconds: opts.durationSeconds ?? 3600,
      ...(loc.externalId ? { ExternalId: loc.externalId } : {}),
      ...(tags.length > 0 ? { Tags: tags } : {}),
    },
    clientConfig: {
      region: opts.stsRegion,
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 15_000 },
    },
  });
  const onCall = opts.onCall ?? (() => {});
  return new RefreshingCredentials(async () => {
    try {
      const creds = await assume();
      onCall('AssumeRole', 'success');
      return creds;
    } catch (error) {
      onCall('AssumeRole', callOutcome(error));
      if (ACCESS_DENIED_ON_ASSUME.has(awsErrorName(error) ?? '')) {
        throw new AwsAssumeRoleDeniedError(roleArn, (error as Error).message, loc.externalId !== undefined);
      }
      throw error;
    }
  }, opts.clock);
}
