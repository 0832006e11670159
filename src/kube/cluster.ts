/**
 * Reads of the cluster-wide objects the controller judges trust by: Namespaces (their
 * labels decide which runbooks a namespace is granted and which admission bindings
 * cover it), the approval ValidatingAdmissionPolicy and its bindings, and the status
 * subresource of the cluster-scoped Runbook. Lists for informers; writes only Runbook status.
 */
import { AdmissionregistrationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, RUNBOOK, VERSION, type Runbook } from '../api/v1alpha1/index.js';
import type { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from '../api/admissionregistration/v1.js';
import type { ListOptions, ListResult } from '../runtime/informer.js';

export interface NamespaceObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; labels?: Record<string, string>; resourceVersion?: string; uid?: string };
}

type Meta = { metadata?: { resourceVersion?: string; _continue?: string; continue?: string } };
const listResult = <T>(list: { items: unknown[]; metadata?: Meta['metadata'] }): ListResult<T> => {
  // Typed lists name the token `_continue`, custom object lists (plain JSON) `continue`.
  const token = list.metadata?._continue ?? list.metadata?.continue;
  return { items: list.items as T[], resourceVersion: list.metadata?.resourceVersion ?? '', ...(token && { continue: token }) };
};
/** The informer's page request, in client-node's parameter names. */
const page = (o: ListOptions) => ({ limit: o.limit, _continue: o.continue });

/** A list function and watch path per kind, for `Informer`. */
export class ClusterReads {
  private readonly core: CoreV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.admission = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  readonly namespacesPath = '/api/v1/namespaces';
  readonly policiesPath = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies';
  readonly bindingsPath = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings';
  readonly runbooksPath = `/apis/${GROUP}/${VERSION}/${RUNBOOK.plural}`;

  async namespaces(options: ListOptions = {}): Promise<ListResult<NamespaceObject>> {
    return listResult(await this.core.listNamespace(page(options)));
  }

  async admissionPolicies(options: ListOptions = {}): Promise<ListResult<ValidatingAdmissionPolicy>> {
    return listResult(await this.admission.listValidatingAdmissionPolicy(page(options)));
  }

  async admissionBindings(options: ListOptions = {}): Promise<ListResult<ValidatingAdmissionPolicyBinding>> {
    return listResult(await this.admission.listValidatingAdmissionPolicyBinding(page(options)));
  }

  /**
   * The admission policy, every binding and the namespace, read from the API server now
   * (quorum reads, not a cache): what an approval is accepted on (ADR 0011).
   */
  async admissionNow(
    policyName: string,
    namespace: string,
  ): Promise<{ policy?: ValidatingAdmissionPolicy; bindings: ValidatingAdmissionPolicyBinding[]; namespace?: NamespaceObject }> {
    const absent = (error: unknown) => {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    };
    const [policy, bindings, ns] = await Promise.all([
      this.admission.readValidatingAdmissionPolicy({ name: policyName }).catch(absent),
      this.admission.listValidatingAdmissionPolicyBinding(),
      this.core.readNamespace({ name: namespace }).catch(absent),
    ]);
    return {
      ...(policy && { policy: policy as ValidatingAdmissionPolicy }),
      bindings: bindings.items as ValidatingAdmissionPolicyBinding[],
      ...(ns && { namespace: ns as NamespaceObject }),
    };
  }

  async runbooks(options: ListOptions = {}): Promise<ListResult<Runbook>> {
    return listResult(
      (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: RUNBOOK.plural, ...page(options) })) as {
        items: unknown[];
        metadata?: Meta['metadata'];
      },
    );
  }

  async replaceRunbookStatus(name: string, body: Runbook): Promise<Runbook> {
    return (await this.custom.replaceClusterCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      plural: RUNBOOK.plural,
      name,
      body,
    })) as Runbook;
  }
}
