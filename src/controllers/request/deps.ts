/** What the request controller's phase handlers need from the world: caches, AWS, the API server, time. */
import type { AlertPolicy, RemediationRequest, Runbook } from '../../api/v1alpha1/index.js';
import type { CloudServices } from '../../cloud/clients.js';
import type { AwsLocation } from '../../cloud/location.js';
import type { EventRecorder, ResourceClient } from '../../kube/resources.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Clock } from '../../runtime/clock.js';
import type { AdmissionVerdict } from '../admission.js';
import type { AuditRecorder } from '../audit.js';
import type { ExecutionLedger } from '../ledger.js';
import type { RetentionDefaults } from '../retention.js';

export interface RemediationRequestReconcilerDeps {
  requests: ResourceClient<RemediationRequest>;
  getRequest(namespace: string, name: string): RemediationRequest | undefined;
  /**
   * Subscribes to the request informer's deliveries (each version, and deletions), so the
   * reconciler knows when the cache holds its own last write (read-your-writes). Without
   * it the reconciler still compares the cached version with what it wrote.
   */
  observeRequests?(handler: (object: RemediationRequest, deleted: boolean) => void): void;
  getPolicy(namespace: string, name: string): AlertPolicy | undefined;
  getRunbook(name: string): Runbook | undefined;
  /** A namespace's labels from the cache; undefined when it is not (yet) known. */
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  /** Whether manual approvals in a namespace are guarded by the admission policy. */
  admission(namespace: string): AdmissionVerdict;
  /** The same, read from the API server now rather than the caches: what an approval is accepted on (ADR 0011). */
  admissionLive?(namespace: string): Promise<AdmissionVerdict>;
  /** Every execution on record: what cooldown, rate limit and the circuit breaker read. */
  ledger: ExecutionLedger;
  /** Writes an ended request's audit record before retention deletes it (undefined: no sink). */
  audit?: Pick<AuditRecorder, 'beforeDelete'>;
  /** Retention of finished requests for policies that set none (`--retention-*` flags). */
  retentionDefaults: RetentionDefaults;
  /** AWS clients for a location; throws an Error saying what to configure when it cannot reach it. */
  cloudFor(location: AwsLocation): CloudServices;
  /**
   * The controller's own AWS account (STS GetCallerIdentity, cached): where a runbook
   * without `scope.account` acts, checked against an alert's account. Rejects when it
   * cannot be learnt (the reconcile is retried); absent: unknown, and such alerts are refused.
   */
  ownAccount?: () => Promise<string>;
  /** The controller's own region: where runbooks without `scope.regions` act. */
  defaultRegion: string;
  events: EventRecorder;
  metrics: Metrics;
  clock: Clock;
  /**
   * The tag the controller's IAM policy requires on every SendCommand target
   * (`--required-target-tag`, default remediator.dev/managed=true); undefined turns the check off.
   */
  requiredTargetTag?: { key: string; value: string };
  /** The admin's opt-out tag (`--opt-out-tag`); a policy's enrichment.optOutTag only adds to it. Default remediator.dev/opt-out=true. */
  optOutTag?: { key: string; value: string };
  /** SSM documents a runbook may use. */
  allowedDocuments: ReadonlySet<string>;
  /** First invocation poll delay; doubles up to `maxPollIntervalMs`. */
  pollIntervalMs?: number;
  maxPollIntervalMs?: number;
  /** How long ListCommands is given to show a command that may have been sent before one is sent again. */
  sendSettleMs?: number;
}
