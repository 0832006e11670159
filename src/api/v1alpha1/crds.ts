/**
 * The CustomResourceDefinitions, built from the schemas in this package. `npm run
 * manifests` writes them to `config/crd/bases` and the chart; a test fails when the
 * committed YAML differs from what this file produces.
 */
import type { TSchema } from '@sinclair/typebox';
import { AlertPolicySpec, AlertPolicyStatus } from './alertpolicy.js';
import { END_PHASES, RemediationRequestSpec, RemediationRequestStatus, VERIFIED_CONDITION } from './remediationrequest.js';
import { RunbookSpec, RunbookStatus } from './runbook.js';
import { toOpenApi } from './schema.js';

export const GROUP = 'remediator.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface ResourceNames {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
}

export const ALERT_POLICY: ResourceNames = { kind: 'AlertPolicy', plural: 'alertpolicies', singular: 'alertpolicy', shortNames: ['ap'] };
export const RUNBOOK: ResourceNames = { kind: 'Runbook', plural: 'runbooks', singular: 'runbook', shortNames: ['rb'] };
export const REMEDIATION_REQUEST: ResourceNames = {
  kind: 'RemediationRequest',
  plural: 'remediationrequests',
  singular: 'remediationrequest',
  shortNames: ['rr'],
};

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date' | 'boolean' | 'number';
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** Rules on the whole object, where spec and status are both visible. */
type RootRule = { rule: string; message: string };

function crd(
  names: ResourceNames,
  spec: TSchema,
  status: TSchema,
  columns: PrinterColumn[],
  description: string,
  rootRules: RootRule[] = [],
  scope: 'Namespaced' | 'Cluster' = 'Namespaced',
) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: `${names.kind}List`,
        plural: names.plural,
        singular: names.singular,
        shortNames: names.shortNames,
        categories: ['remediator'],
      },
      scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description,
              required: ['spec'],
              ...(rootRules.length > 0 && { 'x-kubernetes-validations': rootRules }),
              properties: {
                apiVersion: { type: 'string', description: `The versioned schema of this object: \`${API_VERSION}\`.` },
                kind: { type: 'string', description: `The kind of this object: \`${names.kind}\`.` },
                // The API server describes metadata itself and refuses anything here but `type`.
                metadata: { type: 'object' },
                spec: toOpenApi(spec),
                status: toOpenApi(status),
              },
            },
          },
        },
      ],
    },
  };
}

export function customResourceDefinitions() {
  const ended = [...END_PHASES].map((p) => `'${p}'`).join(', ');
  return [
    crd(
      RUNBOOK,
      RunbookSpec,
      RunbookStatus,
      [
        { name: 'Action', type: 'string', jsonPath: '.spec.action.ssm.documentName' },
        { name: 'MinRisk', type: 'string', jsonPath: '.spec.minRisk' },
        { name: 'MaxTargets', type: 'integer', jsonPath: '.spec.scope.maxTargets' },
        { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
      'Runbook says what may run and where (cluster-scoped, written by cluster administrators); AlertPolicies reference it.',
      [],
      'Cluster',
    ),
    crd(
      ALERT_POLICY,
      AlertPolicySpec,
      AlertPolicyStatus,
      [
        { name: 'Runbook', type: 'string', jsonPath: '.spec.runbookRef.name' },
        { name: 'Risk', type: 'string', jsonPath: '.spec.risk' },
        { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
        {
          name: 'Suspended',
          type: 'string',
          jsonPath: '.status.conditions[?(@.type=="Suspended")].status',
          description: 'True while the circuit breaker is open or spec.safety.suspend is set: the policy executes nothing.',
        },
        { name: 'Matched', type: 'integer', jsonPath: '.status.matched' },
        { name: 'Succeeded', type: 'integer', jsonPath: '.status.succeeded' },
        { name: 'Failed', type: 'integer', jsonPath: '.status.failed' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
      'AlertPolicy says which alerts remediator acts on, how it enriches them, what it does and how carefully.',
    ),
    crd(
      REMEDIATION_REQUEST,
      RemediationRequestSpec,
      RemediationRequestStatus,
      [
        { name: 'Policy', type: 'string', jsonPath: '.spec.policyRef.name' },
        { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
        { name: 'Reason', type: 'string', jsonPath: '.status.reason', priority: 1, description: 'Why the request is in its phase.' },
        { name: 'Risk', type: 'string', jsonPath: '.status.risk' },
        { name: 'Targets', type: 'integer', jsonPath: '.status.targetCount' },
        {
          name: 'Verified',
          type: 'string',
          jsonPath: `.status.conditions[?(@.type=="${VERIFIED_CONDITION}")].reason`,
          priority: 1,
          description: "Verification after success (the policy's spec.verify): Verifying, AlertResolved, MetricRecovered or Ineffective.",
        },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
      'RemediationRequest is one alert occurrence turned into one remediation, and its audit record.',
      [
        {
          // Once a command may be running, or the request is over, the record of what was
          // asked must not be rewritten (auto-approved requests have no approval to freeze it).
          rule: `!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Executing', ${ended}]) || self.spec == oldSelf.spec`,
          message: 'spec cannot change once the request is executing or has ended; create a new RemediationRequest instead',
        },
      ],
    ),
  ];
}
