/**
 * Narrow, typed access to the custom resources and Events the controllers need, so
 * controllers depend on these interfaces and tests can swap them for fakes. src/kube
 * is how the controllers reach the Kubernetes API; the runtime's informer and leader
 * election, the intake (src/intake/kube.ts), the kubectl plugin and src/main.ts talk to
 * it directly too.
 */
import { hostname } from 'node:os';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type KubeConfig,
  type V1ObjectReference,
} from '@kubernetes/client-node';
import { API_VERSION, GROUP, VERSION, type ResourceNames } from '../api/v1alpha1/index.js';
import type { Clock } from '../runtime/clock.js';
import type { KubeObject, ListOptions, ListResult } from '../runtime/informer.js';

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof ApiException && error.code === 409;
}

/** CRUD on one namespaced custom resource kind. */
export interface ResourceClient<T extends KubeObject> {
  readonly names: ResourceNames;
  readonly watchPath: string;
  /**
   * Lists the kind (in the client's namespace, if it has one); with `options.limit`, one
   * page and the token of the next, as the informer reads it. A failed call throws
   * client-node's `ApiException`, whose `headers` keep the server's `Retry-After`.
   */
  listAll(options?: ListOptions): Promise<ListResult<T>>;
  get(namespace: string, name: string): Promise<T | undefined>;
  create(namespace: string, body: T): Promise<T>;
  /** Replace the status subresource; fails with 409 when `body.metadata.resourceVersion` is stale. */
  replaceStatus(namespace: string, name: string, body: T): Promise<T>;
  /** Sets `metadata.finalizers`; fails with 409 when `resourceVersion` is stale. */
  setFinalizers(namespace: string, name: string, finalizers: string[], resourceVersion: string): Promise<T>;
  /** Deletes the object if it is still the one with `uid`; false when it was already gone. */
  delete(namespace: string, name: string, uid: string): Promise<boolean>;
}

export class CustomResourceClient<T extends KubeObject> implements ResourceClient<T> {
  private readonly api: CustomObjectsApi;
  readonly watchPath: string;

  /** With `namespace`, lists and watches only that namespace (`--watch-namespace`). */
  constructor(
    kubeConfig: KubeConfig,
    readonly names: ResourceNames,
    private readonly namespace?: string,
  ) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.watchPath = namespace
      ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${names.plural}`
      : `/apis/${GROUP}/${VERSION}/${names.plural}`;
  }

  private base(namespace: string) {
    return { group: GROUP, version: VERSION, namespace, plural: this.names.plural };
  }

  async listAll(options: ListOptions = {}): Promise<ListResult<T>> {
    const page = { limit: options.limit, _continue: options.continue };
    const list = (
      this.namespace
        ? await this.api.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace: this.namespace,
            plural: this.names.plural,
            ...page,
          })
        : await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: this.names.plural, ...page })
    ) as {
      items: T[];
      metadata: { resourceVersion: string; continue?: string };
    };
    return {
      items: list.items,
      resourceVersion: list.metadata.resourceVersion,
      ...(list.metadata.continue && { continue: list.metadata.continue }),
    };
  }

  async get(namespace: string, name: string): Promise<T | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({ ...this.base(namespace), name })) as T;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async create(namespace: string, body: T): Promise<T> {
    return (await this.api.createNamespacedCustomObject({
      ...this.base(namespace),
      body: { apiVersion: API_VERSION, kind: this.names.kind, ...body },
    })) as T;
  }

  async replaceStatus(namespace: string, name: string, body: T): Promise<T> {
    return (await this.api.replaceNamespacedCustomObjectStatus({ ...this.base(namespace), name, body })) as T;
  }

  async setFinalizers(namespace: string, name: string, finalizers: string[], resourceVersion: string): Promise<T> {
    // A merge patch carrying the resourceVersion is refused with 409 when the object moved on.
    return (await this.api.patchNamespacedCustomObject(
      { ...this.base(namespace), name, body: { metadata: { resourceVersion, finalizers } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as T;
  }

  async delete(namespace: string, name: string, uid: string): Promise<boolean> {
    try {
      await this.api.deleteNamespacedCustomObject({
        ...this.base(namespace),
        name,
        body: { preconditions: { uid }, propagationPolicy: 'Background' },
      });
      return true;
    } catch (error) {
      if (isNotFound(error) || isConflict(error)) return false;
      throw error;
    }
  }
}

export type EventType = 'Normal' | 'Warning';

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
  /** Events waiting to be written; beyond this new ones are dropped (and counted), so a stalled API server cannot grow memory. */
  maxQueued?: number;
  /** A repeat within this window extends the existing Event's series instead of creating a new Event (client-go: 6 minutes). */
  seriesWindowMs?: number;
  /** Series remembered at once (oldest forgotten first). */
  maxSeries?: number;
}

interface PendingEvent {
  key: string;
  namespace: string;
  regarding: V1ObjectReference;
  type: EventType;
  reason: string;
  note: string;
  at: number;
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

/**
 * Writes Events through `events.k8s.io/v1`, the API `kubectl events` and current
 * client-go recorders use, with `reportingController` and `reportingInstance` set.
 *
 * Off the critical path: `record()` only queues; one writer drains the queue in order.
 * Aggregated like client-go's `tools/events`: a repeat of the same Event (same object,
 * type, reason and note) within `seriesWindowMs` patches the first one's `series`
 * (count, lastObservedTime) instead of creating another object. The note is part of
 * the key, unlike client-go's, because our notes carry the facts (which instance, which
 * IAM action) that a series would otherwise hide.
 */
export class KubeEventRecorder implements EventRecorder {
  private readonly api: EventsV1Api;
  private readonly core: CoreV1Api;
  /** Set once events.k8s.io answered 403: RBAC from before this recorder grants only core/v1 Events. */
  private legacy = false;
  private readonly reportingController: string;
  private readonly reportingInstance: string;
  private readonly maxQueued: number;
  private readonly seriesWindowMs: number;
  private readonly maxSeries: number;
  private readonly queue: PendingEvent[] = [];
  /** Insertion-ordered, so the first key is the least recently observed series. */
  private readonly series = new Map<string, Series>();
  private sequence = 0n;
  private draining: Promise<void> | undefined;
  private droppedSinceReport = 0;
  /** Events dropped because the queue was full, since start. */
  dropped = 0;

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
    this.seriesWindowMs = options.seriesWindowMs ?? 6 * 60_000;
    this.maxSeries = options.maxSeries ?? 4096;
  }

  record(object: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    if (this.queue.length >= this.maxQueued) {
      this.dropped++;
      // One report per burst, not one per dropped Event.
      if (this.droppedSinceReport++ === 0) this.onError(new Error(`Event queue full (${this.maxQueued}); dropping Events until it drains`));
      return Promise.resolve();
    }
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
    this.queue.push({ key, namespace, regarding, type, reason: shortReason, note, at: this.clock.now() });
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
    return Promise.resolve();
  }

  /** Resolves once every Event queued so far has been written (or given up on): for shutdown and tests. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      try {
        await this.write(next);
      } catch (error) {
        // An Event is best effort: losing one must never fail or retry a reconcile.
        this.onError(error);
      }
      if (this.queue.length === 0) this.droppedSinceReport = 0;
    }
  }

  private async write(event: PendingEvent): Promise<void> {
    if (this.legacy) return this.createLegacy(event);
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
      this.legacy = true;
      this.onError(
        new Error(
          'cannot create events.k8s.io/v1 Events (403); recording core/v1 Events instead: ' +
            'grant create and patch on events in API group events.k8s.io',
        ),
      );
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
        count: 1,
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
