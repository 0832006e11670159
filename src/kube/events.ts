/**
 * Kubernetes Events on the objects the controllers act on (events.k8s.io/v1, falling
 * back to core/v1), off the reconcile path: `record()` only queues, and writers drain
 * the queue. Moved here from resources.ts (issue 22); resources.ts re-exports the names.
 *
 * Bursts: a remediation records about one Event, so a burst of thousands of alerts
 * queues thousands. The queue is bounded (memory must not grow with a stalled API
 * server), and what does not fit is not dropped but combined: Events of the same kind
 * of object, namespace, type and reason that overflow become one Event on the latest of
 * those objects, whose note says how many it stands for (client-go's EventCorrelator
 * does the same, "combined from similar events"). Only when even the combined Events
 * outgrow their own bound is an Event dropped — counted, and reported once per burst.
 * Every Event ends in exactly one of the outcomes `onResult` is told, which the
 * controller exports as remediator_events_total{result}.
 *
 * Fewer Events under bursts (issue 24: an Event is an API write, about one per
 * remediation): Normal Events of one kind of object, namespace and reason are written
 * freely up to a budget (a bucket of 20, refilled 1 a second); beyond it they are
 * combined the same way, held for 10 s, and written as one Event that says how many it
 * stands for. A steady trickle of alerts keeps one Event per remediation; a burst of a
 * thousand writes a few dozen. Warnings are never held or combined while the queue has
 * room: each says what went wrong where.
 *
 * One writer drains the queue while it is short, so Events are written in the order
 * they were recorded; with a backlog more writers join (Events of one object, type,
 * reason and note — one series — are still written one at a time, in order).
 * (src/kube's import rules: resources.ts.)
 */
import { hostname } from 'node:os';
import { ApiException, CoreV1Api, EventsV1Api, V1MicroTime, type KubeConfig, type V1ObjectReference } from '@kubernetes/client-node';
import { GROUP } from '../api/v1alpha1/index.js';
import type { Clock } from '../runtime/clock.js';
import type { KubeObject } from '../runtime/informer.js';

export type EventType = 'Normal' | 'Warning';

/**
 * What became of a recorded Event: `written` (created, or counted into its series),
 * `coalesced` (combined into another Event during a burst), `dropped` (not recorded at
 * all: the burst outgrew the combined Events too), `failed` (the API server refused it).
 */
export type EventResult = 'written' | 'coalesced' | 'dropped' | 'failed';

/**
 * Records Kubernetes Events on the objects a controller acts on. Recording never blocks
 * or fails the caller: the returned promise resolves at once, and an Event that cannot
 * be written is reported elsewhere (a log line), never thrown into a reconcile.
 */
export interface EventRecorder {
  record(object: KubeObject, type: EventType, reason: string, message: string): Promise<void>;
}

export interface KubeEventRecorderOptions {
  /** `reportingInstance`: which replica recorded the Event. Default: POD_NAME, else the host name (the pod's name in a pod). */
  reportingInstance?: string;
  /** Events waiting to be written; beyond this new ones are combined (see the file's comment), so a stalled API server cannot grow memory. */
  maxQueued?: number;
  /** Combined Events (one per namespace, kind, type and reason) held at once; beyond this an overflowing Event is dropped and counted. */
  maxCombined?: number;
  /** Writers at most, once the queue holds more than `backlog` Events (one below it). */
  maxWriters?: number;
  backlog?: number;
  /** A repeat within this window extends the existing Event's series instead of creating a new Event (client-go: 6 minutes). */
  seriesWindowMs?: number;
  /** Series remembered at once (oldest forgotten first). */
  maxSeries?: number;
  /** Told what became of each recorded Event (for remediator_events_total). */
  onResult?: (result: EventResult) => void;
  /** Normal Events written at once per kind, namespace and reason: a bucket of `capacity`, refilled `perSecond`; beyond it combined. */
  budget?: { capacity: number; perSecond: number };
  /** How long Events combined over the budget are held before they are written as one. */
  holdMs?: number;
}

interface PendingEvent {
  key: string;
  namespace: string;
  regarding: V1ObjectReference;
  type: EventType;
  reason: string;
  note: string;
  at: number;
  /** How many recorded Events this one stands for (more than 1 once combined). */
  count: number;
  /** Combined over the budget: not written before this time (0: as soon as the queue has room). */
  releaseAt?: number;
}

interface Series {
  name: string;
  namespace: string;
  count: number;
  lastObserved: number;
}

/** events.k8s.io/v1 limits: `note` up to 1 kB, `reason` and `action` up to 128 characters. */
const NOTE_LIMIT = 1024;
const REASON_LIMIT = 128;

function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

/**
 * Writes Events through `events.k8s.io/v1`, the API `kubectl events` and current
 * client-go recorders use, with `reportingController` and `reportingInstance` set.
 *
 * Aggregated like client-go's `tools/events`: a repeat of the same Event (same object,
 * type, reason and note) within `seriesWindowMs` patches the first one's `series`
 * (count, lastObservedTime) instead of creating another object. The note is part of
 * the key, unlike client-go's, because our notes carry the facts (which instance, which
 * IAM action) that a series would otherwise hide.
 */
export class KubeEventRecorder implements EventRecorder {
  private readonly api: EventsV1Api;
  private readonly core: CoreV1Api;
  /**
   * Namespaces where events.k8s.io answered 403: RBAC from before this recorder grants
   * only core/v1 Events there. Per namespace, because RBAC is: a namespaced install has
   * no Role in `default`, where the Events of cluster-scoped objects (Runbooks) go, and
   * one refusal there must not turn every other namespace's Events into core/v1 ones.
   */
  private readonly legacy = new Set<string>();
  private readonly reportingController: string;
  private readonly reportingInstance: string;
  private readonly maxQueued: number;
  private readonly maxCombined: number;
  private readonly maxWriters: number;
  private readonly backlog: number;
  private readonly seriesWindowMs: number;
  private readonly maxSeries: number;
  private readonly onResult: (result: EventResult) => void;
  private readonly queue: PendingEvent[] = [];
  /** Overflow, combined by namespace, kind, type and reason; queued again once the queue has room. */
  private readonly combined = new Map<string, PendingEvent>();
  /** Series keys being written: a series is written by one writer at a time, in order. */
  private readonly writing = new Set<string>();
  /** Insertion-ordered, so the first key is the least recently observed series. */
  private readonly series = new Map<string, Series>();
  private sequence = 0n;
  private writers = 0;
  private idle: Array<() => void> = [];
  private droppedSinceReport = 0;
  private readonly budget: { capacity: number; perSecond: number };
  private readonly holdMs: number;
  /** Budget left per kind, namespace and reason (bounded: forgotten when it grows past maxSeries). */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Set by flush(): held Events are written now rather than at their time. */
  private releaseAll = false;
  /** Events dropped (not even combined) since start. */
  dropped = 0;
  /** Events combined into another during a burst, since start. */
  coalesced = 0;

  constructor(
    kubeConfig: KubeConfig,
    component: string,
    private readonly clock: Clock,
    private readonly onError: (error: unknown) => void,
    options: KubeEventRecorderOptions = {},
  ) {
    this.api = kubeConfig.makeApiClient(EventsV1Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    // A qualified name, as the API asks of reportingController (e.g. `kubernetes.io/kubelet`).
    this.reportingController = component.includes('/') ? component : `${GROUP}/${component}`;
    this.reportingInstance = (options.reportingInstance ?? process.env['POD_NAME'] ?? hostname()).slice(0, 128);
    this.maxQueued = options.maxQueued ?? 1000;
    this.maxCombined = options.maxCombined ?? 256;
    this.maxWriters = Math.max(1, options.maxWriters ?? 4);
    this.backlog = options.backlog ?? 32;
    this.seriesWindowMs = options.seriesWindowMs ?? 6 * 60_000;
    this.maxSeries = options.maxSeries ?? 4096;
    this.onResult = options.onResult ?? (() => undefined);
    this.budget = options.budget ?? { capacity: 20, perSecond: 1 };
    this.holdMs = options.holdMs ?? 10_000;
  }

  record(object: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    // Cluster-scoped objects (a Runbook) get their Events in `default`, as client-go does.
    const namespace = object.metadata?.namespace || 'default';
    const regarding: V1ObjectReference = {
      apiVersion: object.apiVersion,
      kind: object.kind,
      name: object.metadata?.name,
      ...(object.metadata?.namespace && { namespace: object.metadata.namespace }),
      uid: object.metadata?.uid,
      resourceVersion: object.metadata?.resourceVersion,
    };
    const note = message.slice(0, NOTE_LIMIT);
    const shortReason = reason.slice(0, REASON_LIMIT);
    const key = [regarding.kind, namespace, regarding.name, regarding.uid, type, shortReason, note].join('\u0000');
    const event: PendingEvent = { key, namespace, regarding, type, reason: shortReason, note, at: this.clock.now(), count: 1 };
    if (this.queue.length >= this.maxQueued) this.overflow(event);
    else if (type === 'Normal' && !this.spend(event)) this.hold(event);
    else this.queue.push(event);
    this.startWriters();
    return Promise.resolve();
  }

  /** Resolves once every Event recorded so far has been written (or given up on), held ones too: for shutdown and tests. */
  flush(): Promise<void> {
    if (this.writers === 0 && this.queue.length === 0 && this.combined.size === 0) return Promise.resolve();
    this.releaseAll = true;
    const done = new Promise<void>((resolve) => this.idle.push(resolve));
    this.startWriters();
    return done;
  }

  private groupOf(event: PendingEvent): string {
    return [event.regarding.kind, event.namespace, event.type, event.reason].join('\u0000');
  }

  /** Takes one from the budget of the Event's group; false when it is spent. */
  private spend(event: PendingEvent): boolean {
    const group = this.groupOf(event);
    const now = this.clock.now();
    const b = this.buckets.get(group) ?? { tokens: this.budget.capacity, at: now };
    b.tokens = Math.min(this.budget.capacity, b.tokens + ((now - b.at) / 1000) * this.budget.perSecond);
    b.at = now;
    if (this.buckets.size > this.maxSeries) this.buckets.clear();
    this.buckets.set(group, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Over the budget: combined with its group's held Event, written once the hold is over. */
  private hold(event: PendingEvent): void {
    const group = this.groupOf(event);
    if (this.combineWithHeld(group, event)) return;
    if (this.combined.size >= this.maxCombined) {
      this.overflow(event);
      return;
    }
    const releaseAt = event.at + this.holdMs;
    this.combined.set(group, { ...event, releaseAt });
    const timer = setTimeout(() => this.startWriters(), this.holdMs + 1);
    timer.unref();
  }

  /**
   * Folds `event` into its group's combined Event when there is one: the newest object and
   * note stand for the group, the count says how many it holds. False when there is none.
   */
  private combineWithHeld(group: string, event: PendingEvent): boolean {
    const have = this.combined.get(group);
    if (!have) return false;
    this.combined.set(group, { ...event, count: have.count + 1, releaseAt: have.releaseAt ?? 0 });
    this.coalesced++;
    this.onResult('coalesced');
    return true;
  }

  /** Combined Events that may be written now. */
  private releasable(): PendingEvent[] {
    if (this.queue.length >= this.maxQueued / 2) return [];
    const now = this.clock.now();
    return [...this.combined.values()].filter((e) => this.releaseAll || (e.releaseAt ?? 0) <= now);
  }

  /** The queue is full: combine with the overflow of its kind, or, when that is full too, drop. */
  private overflow(event: PendingEvent): void {
    const group = this.groupOf(event);
    if (this.combineWithHeld(group, event)) return;
    if (this.combined.size < this.maxCombined) {
      this.combined.set(group, event);
      return;
    }
    this.dropped++;
    this.onResult('dropped');
    // One report per burst, not one per dropped Event.
    if (this.droppedSinceReport++ === 0)
      this.onError(new Error(`Event queue full (${this.maxQueued} queued, ${this.maxCombined} combined); dropping Events until it drains`));
  }

  private startWriters(): void {
    const work = this.queue.length + this.releasable().length;
    const wanted = Math.min(work, this.queue.length > this.backlog ? this.maxWriters : 1);
    while (this.writers < wanted) {
      this.writers++;
      void this.drain().finally(() => {
        this.writers--;
        if (this.writers > 0) return;
        if (this.queue.length + this.releasable().length > 0) this.startWriters();
        else if (this.combined.size === 0) {
          this.releaseAll = false;
          for (const resolve of this.idle.splice(0)) resolve();
        }
      });
    }
  }

  /** The next Event whose series no other writer is writing; combined overflow once the queue has room. */
  private take(): PendingEvent | undefined {
    const release = this.releasable();
    if (release.length > 0) {
      for (const event of release) {
        this.combined.delete(this.groupOf(event));
        if (event.count > 1) {
          const more = ` (and ${event.count - 1} more ${event.reason} Event(s) on ${event.regarding.kind ?? 'object'} objects in ${event.namespace}, combined into this one during a burst)`;
          event.note = event.note.slice(0, NOTE_LIMIT - more.length) + more;
          event.key = `${event.key}\u0000combined`;
        }
        this.queue.push(event);
      }
      this.droppedSinceReport = 0;
    }
    const i = this.queue.findIndex((e) => !this.writing.has(e.key));
    return i < 0 ? undefined : this.queue.splice(i, 1)[0];
  }

  private async drain(): Promise<void> {
    for (let next = this.take(); next; next = this.take()) {
      this.writing.add(next.key);
      try {
        await this.write(next);
        this.onResult('written');
      } catch (error) {
        // An Event is best effort: losing one must never fail or retry a reconcile.
        this.onResult('failed');
        this.onError(error);
      } finally {
        this.writing.delete(next.key);
      }
      if (this.queue.length > this.backlog) this.startWriters();
    }
  }

  private async write(event: PendingEvent): Promise<void> {
    if (this.legacy.has(event.namespace)) return this.createLegacy(event);
    const known = this.series.get(event.key);
    if (known && event.at - known.lastObserved <= this.seriesWindowMs) {
      const count = known.count + 1;
      try {
        await this.api.patchNamespacedEvent({
          name: known.name,
          namespace: known.namespace,
          body: [{ op: 'add', path: '/series', value: { count, lastObservedTime: new V1MicroTime(event.at) } }],
        });
        this.remember(event.key, { ...known, count, lastObserved: event.at });
        return;
      } catch (error) {
        // Events expire (an hour by default): a series whose Event is gone starts again.
        if (!isNotFound(error)) throw error;
      }
    }
    let name: string;
    try {
      name = await this.create(event);
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 403)) throw error;
      // A Role or ClusterRole written before this recorder grants `events` in the core
      // group only. Keep recording there, unaggregated, and say once what to grant.
      if (!this.legacy.has(event.namespace)) {
        this.legacy.add(event.namespace);
        this.onError(
          new Error(
            `cannot create events.k8s.io/v1 Events in namespace ${event.namespace} (403); recording core/v1 Events there instead: ` +
              'grant create and patch on events in API group events.k8s.io',
          ),
        );
      }
      return this.createLegacy(event);
    }
    this.remember(event.key, { name, namespace: event.namespace, count: 1, lastObserved: event.at });
  }

  private async create(event: PendingEvent): Promise<string> {
    const name = this.eventName(event);
    await this.api.createNamespacedEvent({
      namespace: event.namespace,
      body: {
        metadata: { name, namespace: event.namespace },
        eventTime: new V1MicroTime(event.at),
        regarding: event.regarding,
        type: event.type,
        reason: event.reason,
        // What the controller did; our reasons already read as that (Approved, CircuitOpen, Executed).
        action: event.reason,
        note: event.note,
        reportingController: this.reportingController,
        reportingInstance: this.reportingInstance,
      },
    });
    return name;
  }

  private async createLegacy(event: PendingEvent): Promise<void> {
    const at = new Date(event.at);
    await this.core.createNamespacedEvent({
      namespace: event.namespace,
      body: {
        metadata: { name: this.eventName(event), namespace: event.namespace },
        involvedObject: { ...event.regarding, namespace: event.regarding.namespace ?? event.namespace },
        type: event.type,
        reason: event.reason,
        message: event.note,
        source: { component: this.reportingController },
        reportingComponent: this.reportingController,
        reportingInstance: this.reportingInstance,
        firstTimestamp: at,
        lastTimestamp: at,
        count: event.count,
      },
    });
  }

  private eventName(event: PendingEvent): string {
    // Named like client-go's (<object>.<hex nanoseconds>), so names sort in recording order.
    const nanos = BigInt(event.at) * 1_000_000n + (this.sequence++ % 1_000_000n);
    return `${event.regarding.name ?? 'object'}.${nanos.toString(16)}`;
  }

  private remember(key: string, series: Series): void {
    this.series.delete(key);
    this.series.set(key, series);
    if (this.series.size > this.maxSeries) {
      const oldest = this.series.keys().next().value;
      if (oldest !== undefined) this.series.delete(oldest);
    }
  }
}
