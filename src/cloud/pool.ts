/**
 * One controller, many AWS accounts and regions. `CloudPool.forLocation` hands out the
 * clients of one account (a role assumed from the controller's own) and region, created
 * on first use and kept while used: batching and caching (one DescribeInstances per
 * burst) stay per account and region, and one role session (one `AssumeRole` per hour)
 * serves every region of a runbook. Locations differ by session tags too (namespace,
 * policy), so both caches are bounded: least recently used first out, idle ones expire.
 *
 * Errors leave a location naming it: an access denial says which account, region and
 * role (`AwsLocationAccessDeniedError`); a denied `AssumeRole` names the role
 * (`AwsAssumeRoleDeniedError`, from credentials.ts).
 */
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import type { Metrics } from '../observability/metrics.js';
import type { Clock } from '../runtime/clock.js';
import { systemClock } from '../runtime/clock.js';
import { createCloud, type Cloud, type CloudServices } from './clients.js';
import { assumedRoleCredentials, type CredentialProvider, type RefreshingCredentials } from './credentials.js';
import {
  AwsAssumeRoleDeniedError,
  AwsLocationAccessDeniedError,
  accountOfRoleArn,
  locationKey,
  sessionKey,
  type AwsLocation,
  type LocationLabel,
} from './location.js';
import { AwsAccessDeniedError } from './types.js';

export interface CloudPoolOptions {
  /** The controller's own region (AWS_REGION): where STS is asked. */
  homeRegion: string | undefined;
  metrics: Metrics;
  /** SDK attempts per call (see clients.ts). */
  maxAttempts?: number;
  /** Most account+region client sets kept at once (default 64). */
  maxLocations?: number;
  /** A client set unused this long is closed (default 30 minutes). */
  idleMs?: number;
  /** Asked of STS for assumed roles (default 3600; the role's maximum session duration caps it). */
  assumeRoleDurationSeconds?: number;
  /** The controller's own credentials. Default: the SDK's default chain (IRSA, Pod Identity). */
  baseCredentials?: CredentialProvider;
  clock?: Clock;
  /** The required target tag (--required-target-tag): each location sweeps the fleet carrying it (ec2.ts). */
  sweepTags?: Readonly<Record<string, string>>;
}

/** Which account a location reaches, and as whom. */
export interface LocationIdentity {
  account: string;
  /** The role ARN assumed, or the caller ARN STS reported for the controller's own role. */
  arn: string;
}

/** A location's clients. Owned by the pool: there is no `destroy` here. */
export interface LocatedCloud extends CloudServices {
  readonly location: AwsLocation;
  /** Account, region and role, for messages (the account of the base role costs one cached GetCallerIdentity). */
  label(): Promise<LocationLabel>;
}

/** Evicted client sets are closed this long after eviction, so calls still running on them can finish. */
const CLOSE_GRACE_MS = 2 * 60_000;

/** A small LRU with idle expiry. Map order is recency order: re-inserting on each hit moves a key to the end. */
class BoundedCache<V> {
  private readonly entries = new Map<string, { value: V; usedAt: number }>();

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
    private readonly clock: Clock,
    private readonly onEvict: (value: V) => void,
  ) {}

  get(key: string, create: () => V): V {
    const now = this.clock.now();
    for (const [k, e] of this.entries) {
      if (now - e.usedAt <= this.idleMs) break; // the rest were used more recently
      this.entries.delete(k);
      this.onEvict(e.value);
    }
    const hit = this.entries.get(key);
    const value = hit ? hit.value : create();
    this.entries.delete(key);
    this.entries.set(key, { value, usedAt: now });
    while (this.entries.size > this.max) {
      const [oldest, e] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      this.onEvict(e.value);
    }
    return value;
  }

  get size(): number {
    return this.entries.size;
  }

  drain(): V[] {
    const values = [...this.entries.values()].map((e) => e.value);
    this.entries.clear();
    return values;
  }
}

export class CloudPool {
  private readonly base: CredentialProvider;
  private readonly clock: Clock;
  private readonly clouds: BoundedCache<LocatedCloud & { close(): void }>;
  private readonly sessions: BoundedCache<RefreshingCredentials>;
  private readonly closing = new Set<NodeJS.Timeout>();
  private readonly evicted = new Set<() => void>();
  private baseIdentity: Promise<LocationIdentity> | undefined;
  private sts: STSClient | undefined;

  constructor(private readonly opts: CloudPoolOptions) {
    this.base = opts.baseCredentials ?? fromNodeProviderChain();
    this.clock = opts.clock ?? systemClock;
    const max = opts.maxLocations ?? 64;
    const idle = opts.idleMs ?? 30 * 60_000;
    this.clouds = new BoundedCache(max, idle, this.clock, (c) => this.closeLater(c.close));
    // Sessions hold no sockets of their own worth closing; dropping them is enough.
    this.sessions = new BoundedCache(max, idle, this.clock, () => {});
  }

  /** Client sets currently cached (for tests and metrics). */
  get size(): number {
    return this.clouds.size;
  }

  /** The clients for `loc`, created on first use. Throws at once if `loc.roleArn` is not a role ARN. */
  forLocation(loc: AwsLocation): LocatedCloud {
    if (loc.roleArn) accountOfRoleArn(loc.roleArn);
    return this.clouds.get(locationKey(loc), () => this.create({ ...loc }));
  }

  /** Which account `loc` reaches: from the role ARN, or (once, cached) STS GetCallerIdentity for the controller's own role. */
  identity(loc: Pick<AwsLocation, 'roleArn'>): Promise<LocationIdentity> {
    if (loc.roleArn) return Promise.resolve({ account: accountOfRoleArn(loc.roleArn), arn: loc.roleArn });
    this.baseIdentity ??= this.callerIdentity().catch((error: unknown) => {
      this.baseIdentity = undefined; // ask again next time
      throw error;
    });
    return this.baseIdentity;
  }

  /** Closes every client now. The pool must not be used afterwards. */
  destroy(): void {
    for (const c of this.clouds.drain()) c.close();
    this.sessions.drain();
    for (const t of this.closing) clearTimeout(t);
    this.closing.clear();
    for (const close of this.evicted) close();
    this.evicted.clear();
    this.sts?.destroy();
    this.sts = undefined;
  }

  private async callerIdentity(): Promise<LocationIdentity> {
    this.sts ??= new STSClient({ region: this.opts.homeRegion, credentials: this.base, maxAttempts: 3 });
    const out = await this.sts.send(new GetCallerIdentityCommand({}));
    this.opts.metrics.awsCalls.inc({ service: 'sts', operation: 'GetCallerIdentity', outcome: 'success' });
    if (!out.Account || !out.Arn) throw new Error('STS GetCallerIdentity answered without an account');
    return { account: out.Account, arn: out.Arn };
  }

  private create(loc: AwsLocation): LocatedCloud & { close(): void } {
    const credentials = loc.roleArn
      ? this.sessions.get(sessionKey(loc), () =>
          assumedRoleCredentials(loc, {
            base: this.base,
            stsRegion: this.opts.homeRegion,
            durationSeconds: this.opts.assumeRoleDurationSeconds,
            clock: this.clock,
            onCall: (operation, outcome) => this.opts.metrics.awsCalls.inc({ service: 'sts', operation, outcome }),
          }),
        ).provide
      : this.base;
    const cloud: Cloud = createCloud({
      region: loc.region,
      maxAttempts: this.opts.maxAttempts,
      metrics: this.opts.metrics,
      credentials,
      ...(this.opts.sweepTags && { sweepTags: this.opts.sweepTags }),
    });
    const label = async (): Promise<LocationLabel> => {
      const account = await this.identity(loc).then(
        (id) => id.account,
        () => undefined,
      );
      return { region: loc.region, account, roleArn: loc.roleArn };
    };
    const guard = <T>(call: () => Promise<T>): Promise<T> =>
      call().catch(async (error: unknown) => {
        if (error instanceof AwsAssumeRoleDeniedError || error instanceof AwsLocationAccessDeniedError) throw error;
        if (error instanceof AwsAccessDeniedError) throw new AwsLocationAccessDeniedError(error.iamAction, error.awsMessage, await label());
        throw error;
      });
    return {
      location: loc,
      label,
      instances: located(cloud.instances, guard),
      commands: located(cloud.commands, guard),
      cancels: located(cloud.cancels, guard),
      alarms: located(cloud.alarms, guard),
      agents: located(cloud.agents, guard),
      metrics: located(cloud.metrics, guard),
      publisher: located(cloud.publisher, guard),
      close: () => cloud.destroy(),
    };
  }

  private closeLater(close: () => void): void {
    this.evicted.add(close);
    const timer = setTimeout(() => {
      this.closing.delete(timer);
      this.evicted.delete(close);
      close();
    }, CLOSE_GRACE_MS);
    timer.unref();
    this.closing.add(timer);
  }
}

/**
 * The same service object, with every method's rejection passed through `guard`. A
 * proxy rather than one wrapper class per interface: every method of the narrow
 * interfaces in types.ts is async, and a method added there is covered without an edit here.
 */
function located<T extends object>(inner: T, guard: <R>(call: () => Promise<R>) => Promise<R>): T {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const out: unknown = Reflect.apply(value, target, args);
        return out instanceof Promise ? guard(() => out) : out;
      };
    },
  });
}
