/**
 * The intake's narrow access to the Kubernetes API — the only file in this folder that
 * calls it, kept apart from `src/kube` because the intake's calls differ in kind: they
 * serve a waiting HTTP sender, so they are bounded in time and retried by the caller
 * (retry.ts). What it does:
 * - create a RemediationRequest (409 means "already there", which is the dedup), with
 *   the controller's execution finalizer already set: the controller would add it with
 *   a write of its own before the intent (request/intent.ts), and a request that ends
 *   without executing has it removed when settled, as one the controller added;
 * - list the requests of one alert by label, and mark one resolved with a merge patch
 *   guarded by its resourceVersion;
 * - record, in the status of a request being verified, when its alert resolved, and in
 *   that of a request executing, that its alert resolved (`status.alertResolvedAt`, the
 *   controller then stops it): the only status fields the intake writes, as the
 *   controller's own identity, so that namespace editors (who cannot write status) cannot
 *   forge the evidence or the stop (see src/controllers/request/verify.ts, rollout.ts);
 * - read the bearer token Secret;
 * - ask the API server who we are (SelfSubjectReview), for `spec.requestedBy`.
 */
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { API_VERSION, EXECUTION_FINALIZER, GROUP, REMEDIATION_REQUEST, VERSION, type RemediationRequest } from '../api/v1alpha1/index.js';

export const ALERT_LABEL = 'remediator.dev/alert';
export const SOURCE_LABEL = 'remediator.dev/source';
export const POLICY_LABEL = 'remediator.dev/policy';
export const GENERATOR_URL_ANNOTATION = 'remediator.dev/generator-url';

export type ResolveResult = 'patched' | 'conflict' | 'refused' | 'gone';

export interface IntakeKubeApi {
  /** The user name this process authenticates as. */
  whoAmI(): Promise<string>;
  /** The value of `key` in Secret `namespace/name`, or undefined when the Secret or the key does not exist. */
  readSecretValue(namespace: string, name: string, key: string): Promise<string | undefined>;
  /** Creates the request; `exists` when one of that name is already there. */
  createRequest(namespace: string, body: RemediationRequest): Promise<'created' | 'exists'>;
  /** Requests labelled with alert identity `alert`, in `namespace` or all namespaces. */
  listRequestsOfAlert(alert: string, namespace?: string): Promise<RemediationRequest[]>;
  /**
   * Sets `spec.alert.status: resolved`, only if the object is still at `resourceVersion`.
   * `conflict`: it changed meanwhile; `refused`: the API server's rules forbid it (its
   * spec is frozen once approved); `gone`: deleted.
   */
  markResolved(namespace: string, name: string, resourceVersion: string): Promise<ResolveResult>;
  /**
   * Sets `status.verification.alertResolvedAt` with a merge patch of the status (the rest
   * of status is left as the controller wrote it); false when the request is gone.
   */
  recordResolution(namespace: string, name: string, at: string): Promise<boolean>;
  /**
   * Sets `status.alertResolvedAt` (and `status.verification.alertResolvedAt` too when
   * `verifying`) with a merge patch of the status, only if the object is still at
   * `resourceVersion` — the version the intake saw Executing, so a request that ended
   * meanwhile is not marked. `conflict`: it changed meanwhile; `gone`: deleted.
   */
  recordStop(
    namespace: string,
    name: string,
    resourceVersion: string,
    at: string,
    verifying: boolean,
  ): Promise<Exclude<ResolveResult, 'refused'>>;
}

export class KubeIntakeApi implements IntakeKubeApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly auth: AuthenticationV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.auth = kubeConfig.makeApiClient(AuthenticationV1Api);
  }

  async whoAmI(): Promise<string> {
    const review = await this.auth.createSelfSubjectReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    const name = review.status?.userInfo?.username;
    if (!name) throw new Error('SelfSubjectReview returned no user name');
    return name;
  }

  async readSecretValue(namespace: string, name: string, key: string): Promise<string | undefined> {
    try {
      const secret = await this.core.readNamespacedSecret({ namespace, name });
      const data = secret.data?.[key];
      return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  async createRequest(namespace: string, body: RemediationRequest): Promise<'created' | 'exists'> {
    try {
      await this.custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: REMEDIATION_REQUEST.plural,
        body: {
          apiVersion: API_VERSION,
          kind: REMEDIATION_REQUEST.kind,
          ...body,
          // Set here rather than by the controller's first write: one API write less per
          // remediation (issue 24). Requests made with kubectl or GitOps get it from the controller.
          metadata: { ...body.metadata, finalizers: [...new Set([...(body.metadata?.finalizers ?? []), EXECUTION_FINALIZER])] },
        },
      });
      return 'created';
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) return 'exists';
      throw error;
    }
  }

  async listRequestsOfAlert(alert: string, namespace?: string): Promise<RemediationRequest[]> {
    const labelSelector = `${ALERT_LABEL}=${alert}`;
    const list = (
      namespace
        ? await this.custom.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: REMEDIATION_REQUEST.plural,
            labelSelector,
          })
        : await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: REMEDIATION_REQUEST.plural, labelSelector })
    ) as { items: RemediationRequest[] };
    return list.items;
  }

  async recordResolution(namespace: string, name: string, at: string): Promise<boolean> {
    const result = await this.patchStatus(namespace, name, { status: { verification: { alertResolvedAt: at } } });
    if (result === 'conflict') throw new Error('unexpected conflict on a patch without a resourceVersion');
    return result === 'patched';
  }

  async recordStop(
    namespace: string,
    name: string,
    resourceVersion: string,
    at: string,
    verifying: boolean,
  ): Promise<Exclude<ResolveResult, 'refused'>> {
    return this.patchStatus(namespace, name, {
      metadata: { resourceVersion },
      status: { alertResolvedAt: at, ...(verifying && { verification: { alertResolvedAt: at } }) },
    });
  }

  /** A merge patch of a request's status: 'conflict' when it carries a stale resourceVersion, 'gone' when the request is. */
  private async patchStatus(namespace: string, name: string, body: object): Promise<'patched' | 'conflict' | 'gone'> {
    try {
      await this.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace, plural: REMEDIATION_REQUEST.plural, name, body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return 'patched';
    } catch (error) {
      if (error instanceof ApiException) {
        if (error.code === 409) return 'conflict';
        if (error.code === 404) return 'gone';
      }
      throw error;
    }
  }

  async markResolved(namespace: string, name: string, resourceVersion: string): Promise<ResolveResult> {
    try {
      await this.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: REMEDIATION_REQUEST.plural,
          name,
          body: { metadata: { resourceVersion }, spec: { alert: { status: 'resolved' } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return 'patched';
    } catch (error) {
      if (error instanceof ApiException) {
        if (error.code === 409) return 'conflict';
        if (error.code === 404) return 'gone';
        // 422 Invalid: the CRD's CEL rule freezes the spec once approved.
        if (error.code === 422) return 'refused';
      }
      throw error;
    }
  }
}
