/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with client-go's timing
 * (lease 15 s, renew deadline 10 s, retry 2 s). Only the leader runs controllers; every
 * replica may serve intake. The Lease's resourceVersion makes acquisition and renewal
 * compare-and-swap, so two replicas never both believe they lead. On shutdown the leader
 * releases the Lease (clears the holder) so a successor need not wait for it to expire.
 */
import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  logger: Logger;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  clock?: Clock;
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  /** Called when leadership is lost; the process should stop its controllers (controller-runtime exits). */
  onStoppedLeading(): void;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly leaseMs: number;
  private readonly renewMs: number;
  private readonly retryMs: number;
  private readonly clock: Clock;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  /** The other holder's record as last seen, and when (our clock): expiry never compares two machines' clocks. */
  private observed: { record: string; at: number } | undefined;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
    this.clock = opts.clock ?? systemClock;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  run(callbacks: LeaderCallbacks): void {
    const tick = async () => {
      if (this.stopped) return;
      let ok = false;
      const started = this.clock.now();
      try {
        // A hung call must not keep us believing we lead: give up at the renew deadline.
        ok = await withTimeout(this.tryAcquireOrRenew(), this.renewMs, 'lease update timed out');
      } catch (error) {
        this.opts.logger.warn({ err: error }, 'leader election: lease update failed');
      }
      if (this.stopped) return;
      if (ok) {
        // Counted from when the call started: the lease was valid from then at the latest.
        this.lastRenew = started;
        if (!this.leading) {
          this.leading = true;
          this.opts.logger.info({ lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity }, 'became leader');
          callbacks.onStartedLeading();
        }
      } else if (this.leading && this.clock.now() - this.lastRenew > this.renewMs) {
        this.leading = false;
        this.opts.logger.error('leader election lost: could not renew the lease within the renew deadline');
        callbacks.onStoppedLeading();
        return;
      }
      this.timer = setTimeout(() => void tick(), this.retryMs);
    };
    void tick();
  }

  /** Lease times are MicroTime (six fractional digits); a plain Date serializes with three and is refused. */
  private micro(ms: number): Date {
    return new V1MicroTime(ms);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const now = this.clock.now();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 404)) throw error;
      await this.api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: Math.round(this.leaseMs / 1000),
            acquireTime: this.micro(now),
            renewTime: this.micro(now),
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const duration = (spec.leaseDurationSeconds ?? Math.round(this.leaseMs / 1000)) * 1000;
    if (holder && holder !== identity) {
      // client-go's rule: the lease is expired when its record has not changed for a
      // lease duration *as measured by our clock* since we first saw that record.
      const record = `${holder}/${spec.renewTime ? new Date(spec.renewTime).toISOString() : ''}/${lease.metadata?.resourceVersion ?? ''}`;
      if (this.observed?.record !== record) this.observed = { record, at: now };
      if (this.observed.at + duration > now) return false;
    }
    const transitions = (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: Math.round(this.leaseMs / 1000),
      acquireTime: holder === identity ? spec.acquireTime : this.micro(now),
      renewTime: this.micro(now),
      leaseTransitions: transitions,
    };
    // replace carries lease.metadata.resourceVersion: a concurrent writer makes this fail with 409.
    await this.api.replaceNamespacedLease({ name, namespace, body: lease });
    return true;
  }

  /** Stop campaigning; if leading, give the lease up so another replica takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: this.micro(this.clock.now()) };
      await this.api.replaceNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace, body: lease });
      this.opts.logger.info('released the leader lease');
    } catch (error) {
      this.opts.logger.warn({ err: error }, 'could not release the leader lease; it will expire');
    }
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
