/**
 * Narrow, typed access to the custom resources and Events the controllers need. This
 * folder is the only place that talks to the Kubernetes API (besides the informer's
 * watch), so controllers depend on these interfaces and tests can swap them for fakes.
 */
import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, VERSION, type ResourceNames } from '../api/v1alpha1/index.js';
import type { Clock } from '../runtime/clock.js';
import type { KubeObject, ListResult } from '../runtime/informer.js';

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof ApiException && error.code === 409;
}

export function isAlreadyExists(error: unknown): boolean {
  return error instanceof ApiException && error.code === 409;
}

/** CRUD on one namespaced custom resource kind. */
export interface ResourceClient<T extends KubeObject> {
  readonly names: ResourceNames;
  readonly watchPath: string;
  listAll(): Promise<ListResult<T>>;
  get(namespace: string, name: string): Promise<T | undefined>;
  create(namespace: string, body: T): Promise<T>;
  replace(namespace: string, name: string, body: T): Promise<T>;
  /** Replace the status subresource; fails with 409 when `body.metadata.resourceVersion` is stale. */
  replaceStatus(namespace: string, name: string, body: T): Promise<T>;
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
    this.watchPath = namespace ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${names.plural}` : `/apis/${GROUP}/${VERSION}/${names.plural}`;
  }

  private base(namespace: string) {
    return { group: GROUP, version: VERSION, namespace, plural: this.names.plural };
  }

  async listAll(): Promise<ListResult<T>> {
    const list = (
      this.namespace
        ? await this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.namespace, plural: this.names.plural })
        : await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: this.names.plural })
    ) as {
      items: T[];
      metadata: { resourceVersion: string };
    };
    return { items: list.items, resourceVersion: list.metadata.resourceVersion };
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

  async replace(namespace: string, name: string, body: T): Promise<T> {
    return (await this.api.replaceNamespacedCustomObject({ ...this.base(namespace), name, body })) as T;
  }

  async replaceStatus(namespace: string, name: string, body: T): Promise<T> {
    return (await this.api.replaceNamespacedCustomObjectStatus({ ...this.base(namespace), name, body })) as T;
  }
}

export type EventType = 'Normal' | 'Warning';

/** Records Kubernetes Events on the objects a controller acts on. */
export interface EventRecorder {
  record(object: KubeObject, type: EventType, reason: string, message: string): Promise<void>;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly core: CoreV1Api;
  private sequence = 0n;

  constructor(
    kubeConfig: KubeConfig,
    private readonly component: string,
    private readonly clock: Clock,
    private readonly onError: (error: unknown) => void,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async record(object: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const namespace = object.metadata?.namespace ?? 'default';
    const now = new Date(this.clock.now());
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          // Named like client-go's (<object>.<hex nanoseconds>), so names sort in recording order.
          metadata: { name: `${object.metadata?.name ?? 'object'}.${(BigInt(now.getTime()) * 1_000_000n + (this.sequence++ % 1_000_000n)).toString(16)}`, namespace },
          involvedObject: {
            apiVersion: object.apiVersion,
            kind: object.kind,
            name: object.metadata?.name,
            namespace,
            uid: object.metadata?.uid,
            resourceVersion: object.metadata?.resourceVersion,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: this.component },
          reportingComponent: this.component,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (error) {
      // An Event is best effort: losing one must never fail or retry a reconcile.
      this.onError(error);
    }
  }
}
