/**
 * Narrow, typed access to the custom resources the controllers need (Events: events.ts), so
 * controllers depend on these interfaces and tests can swap them for fakes. src/kube
 * is how the controllers reach the Kubernetes API; the runtime's informer and leader
 * election, the intake (src/intake/kube.ts), the kubectl plugin and src/main.ts talk to
 * it directly too.
 */
import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, VERSION, type ResourceNames } from '../api/v1alpha1/index.js';
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

// The Event recorder lives in events.ts; these names stay importable from here.
export { KubeEventRecorder, type EventRecorder, type EventType, type KubeEventRecorderOptions } from './events.js';
