/**
 * `GetMetricData` shared across requests, the way BatchingInstanceDescriber (ec2.ts)
 * shares `DescribeInstances`: the queries of every request that asks while a call is
 * in flight go out together in the next call, and with nothing in flight a request is
 * sent at once (CloudWatch takes 500 queries per call; the inner reader splits beyond
 * that). Identical queries are asked once, and answers are kept for a few seconds —
 * refreshed ahead together while they are asked for again — so a burst of alerts about
 * one fleet costs a handful of calls instead of one per alert. As for instances, only
 * an answer asked for again is refreshed ahead: one read after its first readers (those
 * that waited for the call that fetched it; for an answer asked ahead, the first that
 * read it), within the TTL of the read before (`lookedUp` in ec2.ts). An answer read
 * once is not asked again: in a storm naming each instance once nobody would read it.
 *
 * Requests are grouped by their lookback (end − start). A group's call covers the
 * window of the latest request in it, which is at most one call's round trip newer
 * than any other's (a batch collects only while the call before it is answered).
 *
 * Freshness: a cached answer is at most half its query's period old (5 s at least,
 * 30 s at most: 30 s for the usual one-minute period), unless `ttlMs` fixes it. Metrics
 * decide whether a guard passes, not which instances are touched (tags and state do,
 * through DescribeInstances, cached 5 s), and CloudWatch adds a datapoint once per
 * period: an answer half a period old misses at most the newest datapoint, which
 * CloudWatch itself publishes minutes late for EC2. cloudwatch-batching.test.ts holds it.
 *
 * Asking ahead for the fleet (with `fleet`, the instances the last DescribeInstances
 * sweep found; see ec2.ts): a call that carries a query about one instance of the fleet
 * (an `InstanceId` dimension) also asks the same question about every other instance of
 * it, up to the call's 500 queries. Alerts of a burst come about that fleet, so the
 * first call of a burst answers for every instance and the next alerts find their
 * answers cached — one call per TTL instead of one for every few alerts until each
 * instance was asked once. It asks only questions with no answer within its TTL: to ask
 * again one past half its TTL would refresh ahead the whole fleet's answers, which
 * refresh-ahead leaves alone until someone asks for them again, so a long burst asks the
 * fleet ahead once per TTL rather than twice. It changes which questions are asked,
 * never how old an answer may be.
 */
import type { Clock } from '../runtime/clock.js';
import { OneAtATime, sendWhenDue } from '../runtime/serial.js';
import { systemClock } from '../runtime/clock.js';
import { lookedUp } from './ec2.js';
import type { MetricDataQuery, MetricDataResult, MetricsReader } from './types.js';

/** GetMetricData takes at most 500 queries per call. */
const MAX_QUERIES_PER_CALL = 500;
/** Bounds of the default cache lifetime (half the query's period). */
const MIN_TTL_MS = 5_000;
const MAX_TTL_MS = 30_000;

interface Waiter {
  queries: readonly MetricDataQuery[];
  resolve: (r: Map<string, MetricDataResult>) => void;
  reject: (e: unknown) => void;
}

/** An answer; `query`/`lookbackMs` let a refresh-ahead ask the same question again. */
interface Cached {
  at: number;
  ttl: number;
  result: MetricDataResult;
  /** The last request that asked it, those a call answered included; none for an answer asked ahead nobody read. */
  usedAt?: number;
  /** Asked for again after its first readers: only then refreshed ahead. */
  again?: boolean;
  query: MetricDataQuery;
  lookbackMs: number;
}

interface Batch {
  lookbackMs: number;
  end: number;
  /** Canonical query key → the query as sent (its id unique within the call). */
  queries: Map<string, MetricDataQuery>;
  waiters: Waiter[];
}

/** What makes two queries the same question to CloudWatch (the caller's id aside). */
function queryKey(q: MetricDataQuery, lookbackMs: number): string {
  const dims = Object.entries(q.dimensions).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([lookbackMs, q.namespace, q.metricName, dims, q.statistic, q.periodSeconds]);
}

export class BatchingMetricsReader implements MetricsReader {
  private readonly pending = new Map<number, Batch>();
  /** One call in flight: the next batch goes out after it, collecting meanwhile. */
  private readonly calls = new OneAtATime();
  /** Answers by query key. */
  private readonly cache = new Map<string, Cached>();
  private nextId = 0;

  constructor(
    private readonly inner: MetricsReader,
    /** As BatchingInstanceDescriber's: the wait for company when idle; 0 sends on the next turn. */
    private readonly windowMs = 0,
    /** How long an answer is kept: a fixed time, or by default half the query's period (5–30 s). */
    private readonly ttlMs: number | 'half-period' = 'half-period',
    private readonly clock: Clock = systemClock,
    /** The instances to ask ahead for (see above); none by default. */
    private readonly fleet: () => readonly string[] = () => [],
  ) {}

  private ttlOf(q: MetricDataQuery): number {
    if (typeof this.ttlMs === 'number') return this.ttlMs;
    return Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, (q.periodSeconds * 1000) / 2));
  }

  getMetricData(queries: readonly MetricDataQuery[], start: Date, end: Date): Promise<Map<string, MetricDataResult>> {
    const lookbackMs = end.getTime() - start.getTime();
    const now = this.clock.now();
    const missing = queries.filter((q) => {
      const hit = this.cache.get(queryKey(q, lookbackMs));
      if (hit) lookedUp(hit, now, hit.ttl);
      return !hit || now - hit.at > hit.ttl;
    });
    if (missing.length === 0) return Promise.resolve(this.answer(queries, lookbackMs));
    return new Promise((resolve, reject) => {
      let batch = this.pending.get(lookbackMs);
      if (!batch) {
        batch = { lookbackMs, end: end.getTime(), queries: new Map(), waiters: [] };
        this.pending.set(lookbackMs, batch);
        const b = batch;
        sendWhenDue(this.calls.busy, this.windowMs, () => void this.flush(b));
      }
      batch.end = Math.max(batch.end, end.getTime());
      // All of the caller's queries, not only the missing ones: a cached answer could expire
      // before the batch is answered, and asking twice within one call costs nothing extra.
      for (const q of queries) {
        const key = queryKey(q, lookbackMs);
        if (!batch.queries.has(key)) batch.queries.set(key, { ...q, id: `q${(this.nextId++).toString(36)}` });
      }
      batch.waiters.push({ queries, resolve, reject });
    });
  }

  /** Each caller's own ids, mapped from the shared answers. */
  private answer(queries: readonly MetricDataQuery[], lookbackMs: number): Map<string, MetricDataResult> {
    const out = new Map<string, MetricDataResult>();
    for (const q of queries) {
      const hit = this.cache.get(queryKey(q, lookbackMs));
      if (hit) out.set(q.id, { values: [...hit.result.values], timestamps: [...hit.result.timestamps] });
    }
    return out;
  }

  /** Answers the requests that waited for a call: each read its answers now, as their first readers. */
  private settle(batch: Batch, at: number): void {
    for (const w of batch.waiters) {
      for (const q of w.queries) {
        const entry = this.cache.get(queryKey(q, batch.lookbackMs));
        if (entry) entry.usedAt = at;
      }
      w.resolve(this.answer(w.queries, batch.lookbackMs));
    }
  }

  /** Sends `batch` when the call before it was answered; until then it takes more requests. */
  private flush(batch: Batch): Promise<void> {
    return this.calls.run(async () => {
      if (this.pending.get(batch.lookbackMs) === batch) this.pending.delete(batch.lookbackMs);
      await this.call(batch);
    });
  }

  /** Adds, for each per-instance question in `batch`, the same question about the rest of the fleet. */
  private askAhead(batch: Batch): void {
    const fleet = this.fleet();
    if (fleet.length === 0) return;
    const members = new Set(fleet);
    const asked = new Set<string>();
    for (const q of [...batch.queries.values()]) {
      const own = q.dimensions['InstanceId'];
      if (own === undefined || !members.has(own)) continue;
      const shape = queryKey({ ...q, dimensions: { ...q.dimensions, InstanceId: '' } }, batch.lookbackMs);
      if (asked.has(shape)) continue;
      asked.add(shape);
      for (const id of fleet) {
        if (batch.queries.size >= MAX_QUERIES_PER_CALL) return;
        const other = { ...q, dimensions: { ...q.dimensions, InstanceId: id } };
        const key = queryKey(other, batch.lookbackMs);
        const hit = this.cache.get(key);
        if (batch.queries.has(key) || (hit && this.clock.now() - hit.at <= hit.ttl)) continue;
        batch.queries.set(key, { ...other, id: `q${(this.nextId++).toString(36)}` });
      }
    }
  }

  private async call(batch: Batch): Promise<void> {
    const now = this.clock.now();
    // Answered since this batch began collecting (by the call it waited behind): not asked
    // again. When nothing is left to ask, no call at all.
    for (const [k] of batch.queries) {
      const hit = this.cache.get(k);
      if (hit && now - hit.at <= hit.ttl / 2) batch.queries.delete(k);
    }
    if (batch.queries.size === 0) {
      this.settle(batch, now);
      return;
    }
    for (const [k, e] of this.cache) {
      if (now - (e.usedAt ?? e.at) > e.ttl) this.cache.delete(k);
      // Refresh-ahead (see BatchingInstanceDescriber): questions asked again within the last
      // TTL whose answers are past half of it ride along, so a fleet's answers expire together.
      else if (
        e.again &&
        e.lookbackMs === batch.lookbackMs &&
        now - e.at > e.ttl / 2 &&
        batch.queries.size < MAX_QUERIES_PER_CALL &&
        !batch.queries.has(k)
      )
        batch.queries.set(k, { ...e.query, id: `q${(this.nextId++).toString(36)}` });
    }
    this.askAhead(batch);
    try {
      const sent = [...batch.queries.entries()];
      const results = await this.inner.getMetricData(
        sent.map(([, q]) => q),
        new Date(batch.end - batch.lookbackMs),
        new Date(batch.end),
      );
      const at = this.clock.now();
      // A query CloudWatch answered without data is cached empty: it is an answer too.
      for (const [key, q] of sent) {
        const held = this.cache.get(key);
        this.cache.set(key, {
          at,
          ttl: this.ttlOf(q),
          result: results.get(q.id) ?? { values: [], timestamps: [] },
          usedAt: held?.usedAt,
          again: held?.again,
          query: q,
          lookbackMs: batch.lookbackMs,
        });
      }
      this.settle(batch, at);
    } catch (error) {
      for (const w of batch.waiters) w.reject(error);
    }
  }
}
