/**
 * The fields of Kubernetes' own admissionregistration.k8s.io/v1 objects the controller
 * reads (a ValidatingAdmissionPolicy and its bindings) to verify that approvals are
 * guarded (src/controllers/admission.ts); src/kube lists them. Kubernetes' API, not
 * ours: only the fields read are declared, all optional.
 */
import type { LabelSelector } from '../v1alpha1/index.js';

export interface NamedRule {
  apiGroups?: string[];
  resources?: string[];
  operations?: string[];
}

export interface MatchResources {
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  resourceRules?: NamedRule[];
  excludeResourceRules?: NamedRule[];
}

interface Identity {
  name?: string;
  uid?: string;
  generation?: number;
}

export interface ValidatingAdmissionPolicy {
  metadata?: Identity;
  spec?: {
    failurePolicy?: string;
    matchConstraints?: MatchResources;
    validations?: Array<{ expression?: string }>;
    variables?: Array<{ name?: string; expression?: string }>;
  };
}

export interface ValidatingAdmissionPolicyBinding {
  metadata?: Identity;
  spec?: { policyName?: string; validationActions?: string[]; matchResources?: MatchResources; paramRef?: unknown };
}
