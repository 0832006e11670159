/**
 * EC2 instance facts through `DescribeInstances`, batched and cached: requests that
 * arrive while a call is in flight share the next call (DataLoader-style), and answers
 * are cached briefly so a burst of alerts about the same fleet costs a few API calls.
 * When nothing is in flight a request is sent at once (on the next turn of the event
 * loop, with whatever else arrived in this one): batching costs no wait when idle.
 */
import { type EC2Client, DescribeInstancesCommand, type Instance } from '@aws-sdk/client-ec2';
import type { Clock, TimerClock } from '../runtime/clock.js';
import { OneAtATime, sendWhenDue } from '../runtime/serial.js';
import { systemClock } from '../runtime/clock.js';
import { callOutcome, classifyAwsError } from './errors.js';
import type { DescribeResult, InstanceDescriber, InstanceFacts } from './types.js';

/**
 * Values in one `instance-id` filter: AWS answers FilterLimitExceeded beyond 200 (observed;
 * see docs/aws-limits.md), so larger fleets are described 200 at a time.
 */
export const MAX_IDS_PER_CALL = 200;

export function instanceFacts(instance: Instance): InstanceFacts {
  const tags: Record<string, string> = {};
  for (const t of instance.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
  return {
    instanceId: instance.InstanceId ?? '',
    state: instance.State?.Name,
    instanceType: instance.InstanceType,
    availabilityZone: instance.Placement?.AvailabilityZone,
    privateIpAddress: instance.PrivateIpAddress,
    tags,
  };
}

/** One paginated `DescribeInstances` by instance-id filter: unknown IDs are simply absent, not an error. */
export class Ec2InstanceDescriber implements InstanceDescriber {
  constructor(
    private readonly client: EC2Client,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {}

  async describe(instanceIds: readonly string[]): Promise<DescribeResult> {
    const found = new Map<string, InstanceFacts>();
    for (let i = 0; i < instanceIds.length; i += MAX_IDS_PER_CALL) {
      const chunk = instanceIds.slice(i, i + MAX_IDS_PER_CALL);
      let token: string | undefined;
      do {
        try {
          const out = await this.client.send(
            new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [...chunk] }], NextToken: token }),
          );
          this.onCall('DescribeInstances', 'success');
          for (const r of out.Reservations ?? [])
            for (const inst of r.Instances ?? []) found.set(inst.InstanceId ?? '', instanceFacts(inst));
          token = out.NextToken;
        } catch (error) {
          this.onCall('DescribeInstances', callOutcome(error));
          throw classifyAwsError(error, 'ec2:DescribeInstances');
        }
      } while (token);
    }
    return { found: instanceIds.flatMap((id) => found.get(id) ?? []), missing: instanceIds.filter((id) => !found.has(id)) };
  }

  async findByTags(tags: Readonly<Record<string, string>>): Promise<InstanceFacts[]> {
    const filters = [
      { Name: 'instance-state-name', Values: ['running'] },
      ...Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })),
    ];
    const out: InstanceFacts[] = [];
    let token: string | undefined;
    do {
      try {
        const page = await this.client.send(new DescribeInstancesCommand({ Filters: filters, NextToken: token }));
        this.onCall('DescribeInstances', 'success');
        for (const r of page.Reservations ?? []) for (const inst of r.Instances ?? []) out.push(instanceFacts(inst));
        token = page.NextToken;
      } catch (error) {
        this.onCall('DescribeInstances', callOutcome(error));
        throw classifyAwsError(error, 'ec2:DescribeInstances');
      }
    } while (token);
    return out.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }
}

interface Pending {
  ids: Set<string>;
  waiters: Array<{ ids: readonly string[]; resolve: (r: DescribeResult) => void; reject: (e: unknown) => void }>;
}

interface Cached {
  /** When EC2's answer arrived. */
  at: number;
  facts: InstanceFacts | undefined;
  /** The last look-up that asked for it, the ones a call answered included; none for a sweep's fact nobody asked for. */
  usedAt?: number;
  /** Looked up again after it was first read (see "Refresh-ahead" below): only then refreshed ahead. */
  again?: boolean;
  /** From a fleet sweep (by tag) rather than a look-up by id. */
  swept?: boolean;
}

/**
 * Notes a look-up of a held entry, and whether it is repeat interest: the look-up before
 * it came within the TTL, and did not itself find this fact expired (if it did, both
 * wait for the same call: they are its first readers, together).
 */
export function lookedUp(entry: { at: number; usedAt?: number; again?: boolean }, now: number, ttlMs: number): void {
  if (entry.usedAt !== undefined && now - entry.usedAt <= ttlMs && entry.usedAt - entry.at <= ttlMs) entry.again = true;
  entry.usedAt = now;
}

/** A fleet-wide sweep: the instances carrying `tags`, described in one paginated call. */
export interface SweepOptions {
  /** The tags every target must carry (the controller's --required-target-tag). */
  tags: Readonly<Record<string, string>>;
  /**
   * A sweep that finds more instances than this is not repeated for `pauseMs`: at that
   * size one look-up by id per burst costs less than describing the fleet. Default 2,000.
   */
  maxInstances?: number;
  /** Default 10 minutes. Also the pause after a sweep that took longer than half the TTL. */
  pauseMs?: number;
  /**
   * Sweep on a miss that follows a quiet spell too. Default false: a miss with no other
   * miss in the TTL before it is asked for by id alone, so a lone alert costs the one
   * call it needs and does not queue behind a describe of the whole fleet (P1, issue 24);
   * the next miss within the TTL, a burst under way, starts the sweep.
   */
  sweepWhenQuiet?: boolean;
  /**
   * How long a look-up may wait for a sweep in flight, counted from the sweep's start,
   * and only while sweeps have taken no longer than this (a first sweep is waited for
   * too). Past it the look-up asks by id and the sweep warms the cache when it lands.
   * Default 200 ms: about one DescribeInstances round trip, so an alert never waits
   * longer for a sweep than it would for its own call.
   */
  waitMs?: number;
}

/** A sweep in flight: when it was sent, and its end (it never rejects; see startSweep). */
interface Sweeping {
  startedAt: number;
  done: Promise<void>;
}

/**
 * Coalesces concurrent `describe` calls into one, and caches facts for `ttlMs`.
 * Instance state changes fast, so the TTL is short (seconds): enough to merge a burst,
 * too short to act on a stale picture.
 *
 * Freshness, where tags decide the blast radius: a fact `describe` returns was answered
 * by EC2 at most `ttlMs` (5 s by default) before the call — refresh-ahead and sweeps
 * renew facts early, they never serve them longer — so an opt-out tag set on an
 * instance, or a required target tag removed from it, is seen by every request whose
 * enrichment starts more than `ttlMs` (plus the round trip of the call that reads it)
 * after EC2 reports it. `findByTags` (tag-selected targets) is never answered from the
 * cache. ec2.test.ts and test/e2e/enrichment-freshness.test.ts hold both to it.
 *
 * Fleet sweep (with `sweep`): a call made because something was not cached also
 * describes every running instance carrying the required target tag (one paginated
 * DescribeInstances by tag filter) when the last sweep is past half the TTL and another
 * miss came within the TTL before this one (a burst under way: a lone alert after a quiet
 * spell is asked for by id alone, the one call it needs, `SweepOptions.sweepWhenQuiet`). Alerts come
 * about that fleet, so after the first call of a burst every instance is cached, and a
 * burst costs one call per TTL however many instances it names (without it, a cold
 * burst about 50 instances costs a call for every few alerts until each was asked
 * once). The sweep warms the cache for what comes next; it never gates what is needed
 * now: it runs beside the calls by id, and a look-up waits for it only while sweeps are
 * fast (`SweepOptions.waitMs`, 200 ms from the sweep's start), then asks by id for what
 * the sweep has not answered. A sweep that took longer than half the TTL pauses
 * sweeping like a fleet above the cap: its facts would expire about as soon as they
 * landed. An instance the last sweep saw and this one does not lost the tag or stopped
 * running: its entry is dropped, so the next look asks EC2 by id and sees the instance
 * as it is — a removed target tag is never served from a sweep. A sweep's facts count
 * from when it was sent (every page EC2 answered came later), and never replace facts
 * read by id after that, so a slow sweep cannot bring back a tag a look-up by id saw
 * removed.
 *
 * Refresh-ahead: each call also asks again for the instances looked up again within the
 * last TTL whose facts are past half their TTL (up to one call's worth of ids). Without
 * it every instance of a fleet expires on its own clock and a burst about 50 instances
 * costs a call every few alerts; with it the fleet's facts expire together, and a burst
 * costs about one call per TTL. "Looked up again" means a look-up after the fact's first
 * readers — the look-ups that waited for the call (or sweep) that fetched it, or for a
 * sweep's fact the first look-up that read it — that came within the TTL of the look-up
 * before it: a hit, or a miss on a fact that expired while in use (the instance keeps
 * coming up, so the fact fetched again is refreshed ahead too). A fact read only by its
 * first readers is not: in a storm naming each instance once nobody reads a refreshed
 * fact, and refreshing them described the fleet over again (ec2.test.ts counts it).
 * One call is in flight at a time; the next batch collects while it is answered, so
 * under load each call serves as many requests as arrived.
 */
export class BatchingInstanceDescriber implements InstanceDescriber {
  private pending: Pending | undefined;
  /** One call in flight: the next batch goes out after it, collecting meanwhile. */
  private readonly calls = new OneAtATime();
  private readonly cache = new Map<string, Cached>();
  /** The last sweep: when it was sent and what it found. */
  private swept: { at: number; ids: Set<string> } | undefined;
  private sweepPausedUntil = 0;
  private sweeping: Sweeping | undefined;
  /** How long the last sweep took (sent to answered); undefined before the first. */
  private lastSweepMs: number | undefined;
  /** When the last call for a miss was made: a sweep starts only on a second miss within the TTL. */
  private lastMissAt: number | undefined;

  /**
   * `windowMs`: how long a batch waits for company when no call is in flight; 0 (the
   * default) sends on the next turn of the event loop. Under load the batch waits behind
   * the call in flight instead, however long that takes, collecting meanwhile.
   */
  constructor(
    private readonly inner: InstanceDescriber,
    private readonly windowMs = 0,
    private readonly ttlMs = 5_000,
    private readonly clock: Clock | TimerClock = systemClock,
    private readonly sweep?: SweepOptions,
  ) {}

  /** The instances the last sweep found while it is fresh (the metrics reader asks ahead for them). */
  fleet(): readonly string[] {
    if (!this.swept || this.clock.now() - this.swept.at > this.ttlMs) return [];
    return [...this.swept.ids];
  }

  describe(instanceIds: readonly string[]): Promise<DescribeResult> {
    const now = this.clock.now();
    const uncached = instanceIds.filter((id) => {
      const hit = this.cache.get(id);
      if (hit) lookedUp(hit, now, this.ttlMs);
      return !hit || now - hit.at > this.ttlMs;
    });
    if (uncached.length === 0) return Promise.resolve(this.fromCache(instanceIds));
    return new Promise((resolve, reject) => {
      if (!this.pending) {
        const batch: Pending = { ids: new Set(), waiters: [] };
        this.pending = batch;
        sendWhenDue(this.calls.busy, this.windowMs, () => void this.flush(batch));
      }
      for (const id of uncached) this.pending.ids.add(id);
      this.pending.waiters.push({ ids: instanceIds, resolve, reject });
    });
  }

  private fromCache(ids: readonly string[]): DescribeResult {
    const found: InstanceFacts[] = [];
    const missing: string[] = [];
    for (const id of ids) {
      const facts = this.cache.get(id)?.facts;
      if (facts) found.push(facts);
      else missing.push(id);
    }
    return { found, missing };
  }

  /** Tag selection always asks EC2: it decides the blast radius, so it must not be stale. */
  async findByTags(tags: Readonly<Record<string, string>>): Promise<InstanceFacts[]> {
    const found = await this.inner.findByTags(tags);
    const at = this.clock.now();
    for (const f of found) this.renew(f.instanceId, at, f);
    return found;
  }

  /** Caches what EC2 answered about `id`, keeping who asked for it before (see `Cached`). */
  private renew(id: string, at: number, facts: InstanceFacts | undefined, swept?: true): void {
    const held = this.cache.get(id);
    this.cache.set(id, { at, facts, usedAt: held?.usedAt, again: held?.again, swept });
  }

  /** Answers the look-ups that waited for a call: each read what it asked for now, as its first readers. */
  private answer(waiters: Pending['waiters'], at: number): void {
    for (const w of waiters) {
      for (const id of w.ids) {
        const entry = this.cache.get(id);
        if (entry) entry.usedAt = at;
      }
      w.resolve(this.fromCache(w.ids));
    }
  }

  /** Sends `batch` when the call before it was answered; until then it takes more requests. */
  private flush(batch: Pending): Promise<void> {
    return this.calls.run(async () => {
      if (this.pending === batch) this.pending = undefined;
      await this.call(batch);
    });
  }

  private sweepDue(now: number): boolean {
    return this.sweep !== undefined && now >= this.sweepPausedUntil && (!this.swept || now - this.swept.at > this.ttlMs / 2);
  }

  private async call(batch: Pending): Promise<void> {
    const now = this.clock.now();
    // Answered since this batch began collecting (by the call it waited behind, a sweep
    // say): not asked again. When nothing is left to ask, no call at all.
    for (const id of batch.ids) {
      const hit = this.cache.get(id);
      if (hit && now - hit.at <= this.ttlMs / 2) batch.ids.delete(id);
    }
    if (batch.ids.size === 0) {
      this.answer(batch.waiters, now);
      return;
    }
    const burst = this.sweep?.sweepWhenQuiet === true || (this.lastMissAt !== undefined && now - this.lastMissAt <= this.ttlMs);
    this.lastMissAt = now;
    if (burst && this.sweepDue(now) && !this.sweeping) this.startSweep(now);
    await this.waitForSweep();
    const after = this.clock.now();
    // What the sweep answered while this call waited for it is not asked by id (a slow
    // sweep's facts may be past half the TTL already: still within it, so served).
    for (const id of batch.ids) {
      const hit = this.cache.get(id);
      if (hit?.swept && after - hit.at <= this.ttlMs) batch.ids.delete(id);
    }
    this.refreshAhead(batch, after);
    try {
      if (batch.ids.size > 0) {
        const result = await this.inner.describe([...batch.ids]);
        const at = this.clock.now();
        for (const f of result.found) this.renew(f.instanceId, at, f);
        for (const id of result.missing) this.renew(id, at, undefined);
      }
      this.answer(batch.waiters, this.clock.now());
    } catch (error) {
      for (const w of batch.waiters) w.reject(error);
    }
  }

  /**
   * Drops what was not looked up within the TTL, and adds to `batch` the facts looked up
   * again that are past half their TTL (up to one call's worth of ids).
   */
  private refreshAhead(batch: Pending, now: number): void {
    for (const [id, entry] of this.cache) {
      if (now - (entry.usedAt ?? entry.at) > this.ttlMs) this.cache.delete(id);
      else if (this.sweeping && entry.swept)
        continue; // renewed by the sweep in flight, or dropped if it left the fleet
      else if (entry.again && now - entry.at > this.ttlMs / 2 && batch.ids.size < MAX_IDS_PER_CALL) batch.ids.add(id);
    }
  }

  /**
   * Waits for the sweep in flight, at most `waitMs` from its start, and not at all once
   * a sweep took longer than that: a slow sweep must not hold up the look-ups by id.
   */
  private async waitForSweep(): Promise<void> {
    const sweeping = this.sweeping;
    const waitMs = this.sweep?.waitMs ?? 200;
    if (!sweeping || (this.lastSweepMs !== undefined && this.lastSweepMs > waitMs)) return;
    const left = sweeping.startedAt + waitMs - this.clock.now();
    if (left <= 0) return;
    const setTimer = 'setTimer' in this.clock ? this.clock.setTimer.bind(this.clock) : systemClock.setTimer;
    let cancel = () => {};
    await Promise.race([sweeping.done, new Promise<void>((r) => (cancel = setTimer(r, left)))]);
    cancel();
  }

  /**
   * Sends a sweep beside the calls by id. A failed sweep fails no look-up (they go by id,
   * and their own call reports an error EC2 keeps giving); the outcome is counted by the
   * inner describer's call metric, and the next sweep waits half a TTL.
   */
  private startSweep(startedAt: number): void {
    const done = this.sweepFleet(startedAt).then(
      () => {
        this.lastSweepMs = this.clock.now() - startedAt;
      },
      () => {
        this.sweepPausedUntil = Math.max(this.sweepPausedUntil, this.clock.now() + this.ttlMs / 2);
      },
    );
    const sweeping: Sweeping = {
      startedAt,
      done: done.finally(() => {
        if (this.sweeping === sweeping) this.sweeping = undefined;
      }),
    };
    this.sweeping = sweeping;
  }

  /** Describes the tagged fleet and caches it, as of `at` (when the sweep was sent). */
  private async sweepFleet(at: number): Promise<void> {
    const sweep = this.sweep!;
    const found = await this.inner.findByTags(sweep.tags);
    const seen = new Set(found.map((f) => f.instanceId));
    // Left the fleet (the tag removed, or no longer running): asked by id next time.
    for (const id of this.swept?.ids ?? []) if (!seen.has(id) && this.cache.get(id)?.swept) this.cache.delete(id);
    for (const f of found) {
      const held = this.cache.get(f.instanceId);
      // Read by id after this sweep was sent: newer than anything the sweep can say.
      if (held && held.at > at) continue;
      this.renew(f.instanceId, at, f, true);
    }
    this.swept = { at, ids: seen };
    const tookMs = this.clock.now() - at;
    if (seen.size > (sweep.maxInstances ?? 2_000) || tookMs > this.ttlMs / 2) {
      this.sweepPausedUntil = this.clock.now() + (sweep.pauseMs ?? 10 * 60_000);
      if (seen.size > (sweep.maxInstances ?? 2_000)) this.swept = undefined;
    }
  }
}
