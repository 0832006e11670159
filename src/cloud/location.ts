/**
 * Where an AWS call goes: a region, and optionally a role in another account that the
 * controller assumes from its own IRSA / Pod Identity role. A cluster admin chooses it
 * in a Runbook's `spec.scope`; nothing a namespace writes can. This file holds the
 * plain-data side of that — keys, session tags, the account a location reaches — and
 * the errors that name the account and region, so controllers can say where AWS refused.
 */
import { AwsAccessDeniedError } from './types.js';

export interface AwsLocation {
  region: string;
  /** A role to assume (role chaining from the controller's role); absent: the controller's own role. */
  roleArn?: string;
  /** `sts:ExternalId` the workload role's trust policy demands, if any. */
  externalId?: string;
  /** STS session tags: the workload role's policies see them as `aws:PrincipalTag/<key>`. */
  sessionTags?: Readonly<Record<string, string>>;
}

/**
 * Session tag keys. STS tag keys may not start with `aws:` and IAM policy variables read
 * best without `/` or `.`, hence `remediator-namespace` rather than `remediator.dev/namespace`.
 */
export const SESSION_TAG_NAMESPACE = 'remediator-namespace';
export const SESSION_TAG_POLICY = 'remediator-policy';

/** Characters STS allows in tag values and role session names (a subset: what Kubernetes names need). */
const STS_TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;

/** The session tags for one request: which namespace and which policy asked. */
export function sessionTagsFor(namespace: string, policy: string): Record<string, string> {
  for (const v of [namespace, policy]) {
    // Kubernetes names always pass; this guards a caller passing something else.
    if (!STS_TAG_VALUE.test(v)) {
      throw new Error(`"${v}" cannot be an STS session tag value (letters, digits, spaces and _.:/=+-@, at most 256)`);
    }
  }
  return { [SESSION_TAG_NAMESPACE]: namespace, [SESSION_TAG_POLICY]: policy };
}

/** What an alert says of where it comes from (a request's `spec.alert`). */
export interface AlertOrigin {
  source: string;
  account?: string;
  region?: string;
  labels?: Readonly<Record<string, string>>;
  annotations?: Readonly<Record<string, string>>;
}

/** The account and region of a CloudWatch alarm ARN, or undefined when it is not one. */
export function alarmArnLocation(arn: string): { account: string; region: string } | undefined {
  const m = /^arn:aws[a-z-]*:cloudwatch:([a-z]{2}(?:-[a-z]+)+-[0-9]+):([0-9]{12}):alarm:.+$/.exec(arn);
  return m ? { region: m[1]!, account: m[2]! } : undefined;
}

/** Where a runbook acts: its regions (or the controller's), and its account's role (absent: the controller's own). */
export interface RunbookReach {
  name: string;
  regions: readonly string[];
  roleArn?: string;
}

export type AlertLocation =
  | { ok: true; region: string }
  | { ok: false; reason: 'AlertLocationUnknown' | 'LocationNotAllowed'; message: string };

const ACCOUNT = /^[0-9]{12}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-[0-9]+$/;

/**
 * Whether a runbook may act on an alert from where the alert comes from, and in which
 * region. A CloudWatch alarm always has a place: without a well-formed account and
 * region it is refused (an editor can create a request directly, so the intake's checks
 * are not the only way in). An alert's account is held against the runbook's account —
 * the role's, or the controller's own (`ownAccount`, from STS GetCallerIdentity) for a
 * runbook without `scope.account`; an own account that is not known refuses too.
 */
export function alertLocation(alert: AlertOrigin, runbook: RunbookReach, ownAccount: string | undefined): AlertLocation {
  const where = `Runbook "${runbook.name}"`;
  if (alert.source === 'cloudwatch' && (!alert.account || !ACCOUNT.test(alert.account) || !alert.region || !REGION.test(alert.region))) {
    return {
      ok: false,
      reason: 'AlertLocationUnknown',
      message:
        `the CloudWatch alert names no valid account and region (account ${JSON.stringify(alert.account ?? null)}, region ${JSON.stringify(alert.region ?? null)}): ` +
        'where it comes from cannot be checked against the runbook, so it is refused',
    };
  }
  if (alert.source === 'cloudwatch') {
    // What the intake derived it from travels with the request: it must say the same.
    const arn = alert.annotations?.['alarm_arn'];
    const fromArn = arn === undefined ? undefined : alarmArnLocation(arn);
    const disagree = [
      arn !== undefined && !fromArn ? `annotation alarm_arn ${JSON.stringify(arn.slice(0, 256))} is not an alarm ARN` : '',
      fromArn && (fromArn.account !== alert.account || fromArn.region !== alert.region)
        ? `annotation alarm_arn names account ${fromArn.account} in ${fromArn.region}`
        : '',
      alert.labels?.['aws_account_id'] !== undefined && alert.labels['aws_account_id'] !== alert.account
        ? `label aws_account_id is ${alert.labels['aws_account_id']}`
        : '',
      alert.labels?.['aws_region'] !== undefined && alert.labels['aws_region'] !== alert.region
        ? `label aws_region is ${alert.labels['aws_region']}`
        : '',
    ].filter(Boolean);
    if (disagree.length > 0) {
      return {
        ok: false,
        reason: 'AlertLocationUnknown',
        message: `the CloudWatch alert says account ${alert.account} in ${alert.region}, but ${disagree.join(', and ')}: where it comes from is inconsistent, so it is refused`,
      };
    }
  }
  if (alert.region !== undefined && !runbook.regions.includes(alert.region)) {
    return {
      ok: false,
      reason: 'LocationNotAllowed',
      message: `the alert comes from region ${alert.region}, and ${where} acts only in ${runbook.regions.join(', ')}`,
    };
  }
  if (alert.account !== undefined) {
    const runbookAccount = runbook.roleArn ? accountOfRoleArn(runbook.roleArn) : ownAccount;
    if (runbookAccount === undefined) {
      return {
        ok: false,
        reason: 'AlertLocationUnknown',
        message: `the alert comes from account ${alert.account}, and the controller's own account (where ${where} acts) is not known; refusing rather than guessing`,
      };
    }
    if (runbookAccount !== alert.account) {
      return {
        ok: false,
        reason: 'LocationNotAllowed',
        message: `the alert comes from account ${alert.account}, and ${where} acts in ${runbook.roleArn ? '' : "the controller's own "}account ${runbookAccount}`,
      };
    }
  }
  return { ok: true, region: alert.region ?? runbook.regions[0]! };
}

const ROLE_ARN = /^arn:(aws[a-zA-Z-]*):iam::(\d{12}):role\/[\w+=,.@/-]+$/;

/** The account a role ARN belongs to; throws on something that is not a role ARN. */
export function accountOfRoleArn(roleArn: string): string {
  const m = ROLE_ARN.exec(roleArn);
  if (!m) throw new Error(`"${roleArn}" is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)`);
  return m[2]!;
}

/** The role to assume and how: what one set of assumed-role credentials is keyed on (not the region). */
export function sessionKey(loc: AwsLocation): string {
  if (!loc.roleArn) return '';
  const tags = Object.entries(loc.sessionTags ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([loc.roleArn, loc.externalId ?? '', tags]);
}

/** One set of clients per account (session) and region. */
export function locationKey(loc: AwsLocation): string {
  return JSON.stringify([loc.region, sessionKey(loc)]);
}

/**
 * A role session name: shows in the workload account's CloudTrail as
 * `assumed-role/<role>/<session>`, so it names who asked. STS allows `[\w+=,.@-]{2,64}`.
 */
export function roleSessionName(loc: AwsLocation): string {
  const ns = loc.sessionTags?.[SESSION_TAG_NAMESPACE];
  const name = ns ? `remediator-${ns}` : 'remediator';
  return name.replace(/[^\w+=,.@-]/g, '-').slice(0, 64);
}

/** What a location reached, for messages: "account 222222222222 in eu-west-1 (role arn:…)". */
export interface LocationLabel {
  region: string;
  /** Undefined when the controller's own account could not be learnt (STS GetCallerIdentity failed). */
  account: string | undefined;
  roleArn: string | undefined;
}

export function describeLocation(where: LocationLabel): string {
  const account = where.account ? `account ${where.account}` : "the controller's own account";
  return `${account} in ${where.region}${where.roleArn ? ` (through role ${where.roleArn})` : ''}`;
}

/** For the condition when requested instances do not exist where the runbook runs. */
export function instancesNotFoundMessage(instanceIds: readonly string[], where: LocationLabel): string {
  return (
    `instance(s) ${instanceIds.join(', ')} not found in ${describeLocation(where)}: ` +
    "check that the runbook's scope (regions, account) is where these instances live"
  );
}

/**
 * AWS refused a call in a given account and region. Still an `AwsAccessDeniedError`
 * (same `iamAction`), so existing handling applies; the message says whose role lacks
 * the permission and where.
 */
export class AwsLocationAccessDeniedError extends AwsAccessDeniedError {
  constructor(
    iamAction: string,
    awsMessage: string,
    readonly location: LocationLabel,
  ) {
    super(iamAction, awsMessage);
    const grantee = location.roleArn
      ? `the workload role ${location.roleArn} (see config/iam/workload-role-policy.json)`
      : "the controller's IAM role (see config/iam/policy.json)";
    this.message = `AWS denied ${iamAction} in ${describeLocation(location)}: ${awsMessage}. Grant ${iamAction} to ${grantee}.`;
  }
}

/**
 * STS refused to let the controller assume a runbook's role. The fix is on one of two
 * sides, and the message names both: the workload role's trust policy, or the
 * controller role's permission to assume (and tag) it.
 */
export class AwsAssumeRoleDeniedError extends AwsAccessDeniedError {
  readonly account: string;
  constructor(
    readonly roleArn: string,
    awsMessage: string,
    readonly externalIdSent: boolean,
  ) {
    super('sts:AssumeRole', awsMessage);
    this.account = accountOfRoleArn(roleArn);
    this.message =
      `AWS denied sts:AssumeRole on ${roleArn} (account ${this.account}): ${awsMessage}. ` +
      `The role's trust policy must admit the controller's role${externalIdSent ? " with the runbook's external id" : ''} ` +
      "and allow sts:TagSession (config/iam/workload-trust-policy.json), and the controller's role must be allowed " +
      'sts:AssumeRole and sts:TagSession on it (config/iam/policy.json); see docs/install.md, "Several AWS accounts".';
  }
}
