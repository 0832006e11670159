// The AWS side of tests, against moto. Two different identities on purpose:
//  - the code under test gets `awsEnv()`: the environment an IRSA pod has (role ARN,
//    web-identity token file, region, endpoint) and no static key at all, so the SDK's
//    default chain must go through STS AssumeRoleWithWebIdentity, as on EKS;
//  - the test itself seeds the fleet (RunInstances, PutMetricData) with static dummy
//    credentials, which moto accepts and which never reach the code under test.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, PutMetricDataCommand, type MetricDatum, type StandardUnit } from '@aws-sdk/client-cloudwatch';
import { EC2Client, RunInstancesCommand, type _InstanceType } from '@aws-sdk/client-ec2';

export const DEFAULT_REGION = 'us-east-1';
/** moto's default account. */
export const ACCOUNT_ID = '123456789012';
export const DEFAULT_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/remediator-controller`;
/** An Ubuntu AMI from moto's built-in catalogue; an unknown id only earns a warning, but why have one. */
export const DEFAULT_IMAGE_ID = 'ami-1e749f67';
/** Static credentials for seeding only. */
export const SEED_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' } as const;

export interface AwsEnvOptions {
  roleArn?: string;
  /** The web-identity token; e.g. a real ServiceAccount token from the test bed. Default: a dummy JWT (moto accepts any). */
  token?: string;
  sessionName?: string;
  /** Where to write the token file; default $REMEDIATOR_TESTBED_DIR/aws, else a temp dir. */
  dir?: string;
  /** The environment to start from (default process.env); its AWS_* variables are dropped. */
  base?: NodeJS.ProcessEnv;
}

let tokenFiles = 0;

// A syntactically valid JWT, so any SDK-side parsing is satisfied; moto does not verify it.
function dummyWebIdentityToken(): string {
  const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return [
    enc({ alg: 'RS256', typ: 'JWT' }),
    enc({
      iss: 'https://oidc.eks.us-east-1.amazonaws.com/id/TESTBED',
      sub: 'system:serviceaccount:remediator-system:remediator',
      aud: ['sts.amazonaws.com'],
      iat: now,
      exp: now + 86_400,
    }),
    enc({ sig: 'testbed' }),
  ].join('.');
}

/**
 * Only the variables of the IRSA path (the ones EKS's pod identity webhook injects,
 * plus the endpoint override and guards that keep ~/.aws and the instance metadata
 * service out of the chain). Writes the token file.
 */
export function irsaVars(endpoint: string, region = DEFAULT_REGION, opts: AwsEnvOptions = {}): Record<string, string> {
  const dir =
    opts.dir ??
    (process.env['REMEDIATOR_TESTBED_DIR']
      ? join(process.env['REMEDIATOR_TESTBED_DIR'], 'aws')
      : mkdtempSync(join(tmpdir(), 'remediator-aws-')));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tokenFile = join(dir, `web-identity-token-${process.pid}-${++tokenFiles}`);
  writeFileSync(tokenFile, opts.token ?? dummyWebIdentityToken(), { mode: 0o600 });
  const nowhere = join(dir, 'does-not-exist');
  return {
    AWS_REGION: region,
    AWS_ROLE_ARN: opts.roleArn ?? DEFAULT_ROLE_ARN,
    AWS_ROLE_SESSION_NAME: opts.sessionName ?? 'remediator-testbed',
    AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
    // One endpoint for every service, STS included: without it STS calls would go to AWS.
    AWS_ENDPOINT_URL: endpoint,
    // A developer's ~/.aws profile would otherwise win over the web identity in the chain.
    AWS_SHARED_CREDENTIALS_FILE: nowhere,
    AWS_CONFIG_FILE: nowhere,
    // And off EC2 there is no metadata service; don't wait for one.
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/**
 * A complete environment for a child process (the controller under test) that reaches
 * moto the way a pod reaches AWS on EKS with IRSA. Every inherited AWS_* variable is
 * removed first — AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * AWS_PROFILE, per-service AWS_ENDPOINT_URL_* — so a static key can never sneak in.
 */
export function awsEnv(endpoint: string, region = DEFAULT_REGION, opts: AwsEnvOptions = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(opts.base ?? process.env)) {
    if (!key.startsWith('AWS_')) env[key] = value;
  }
  return { ...env, ...irsaVars(endpoint, region, opts) };
}

/** Client config for the seeding side: static dummy credentials, moto's endpoint. */
export function seedClientConfig(endpoint: string, region = DEFAULT_REGION) {
  return { endpoint, region, credentials: SEED_CREDENTIALS };
}

/**
 * The tag the controller requires on every SSM target by default (`--required-target-tag`),
 * as the shipped IAM policy does: seeded instances carry it unless a test says otherwise.
 */
export const MANAGED_TAG = { key: 'remediator.dev/managed', value: 'true' } as const;

export interface SeedInstancesOptions {
  count?: number;
  tags?: Record<string, string>;
  /** false: leave out the managed tag (a test of the check itself). Default true. */
  managed?: boolean;
  instanceType?: _InstanceType;
  imageId?: string;
  region?: string;
}

/** Launches `count` (default 1) running instances carrying `tags`; returns their ids. */
export async function seedInstances(endpoint: string, opts: SeedInstancesOptions = {}): Promise<string[]> {
  const count = opts.count ?? 1;
  const ec2 = new EC2Client(seedClientConfig(endpoint, opts.region));
  try {
    const all = { ...(opts.managed === false ? {} : { [MANAGED_TAG.key]: MANAGED_TAG.value }), ...opts.tags };
    const tags = Object.entries(all).map(([Key, Value]) => ({ Key, Value }));
    const res = await ec2.send(
      new RunInstancesCommand({
        ImageId: opts.imageId ?? DEFAULT_IMAGE_ID,
        InstanceType: opts.instanceType ?? 't3.micro',
        MinCount: count,
        MaxCount: count,
        ...(tags.length > 0 ? { TagSpecifications: [{ ResourceType: 'instance', Tags: tags }] } : {}),
      }),
    );
    const ids = (res.Instances ?? []).map((i) => i.InstanceId!).filter(Boolean);
    if (ids.length !== count) throw new Error(`RunInstances returned ${ids.length} instances, wanted ${count}`);
    return ids;
  } finally {
    ec2.destroy();
  }
}

export interface MetricPoint {
  timestamp: Date;
  value: number;
}

/** `values` as points `stepSeconds` apart, the last one at `end` (default now). */
export function pointsEvery(values: number[], stepSeconds = 60, end = new Date()): MetricPoint[] {
  return values.map((value, i) => ({
    value,
    timestamp: new Date(end.getTime() - (values.length - 1 - i) * stepSeconds * 1000),
  }));
}

export interface InstanceMetricOptions {
  namespace?: string;
  metricName?: string;
  unit?: StandardUnit;
  region?: string;
}

/** PutMetricData of `points` for one instance (dimension InstanceId); default AWS/EC2 CPUUtilization in Percent. */
export async function putInstanceMetric(
  endpoint: string,
  instanceId: string,
  points: MetricPoint[],
  opts: InstanceMetricOptions = {},
): Promise<void> {
  const cw = new CloudWatchClient(seedClientConfig(endpoint, opts.region));
  try {
    const data: MetricDatum[] = points.map((p) => ({
      MetricName: opts.metricName ?? 'CPUUtilization',
      Dimensions: [{ Name: 'InstanceId', Value: instanceId }],
      Timestamp: p.timestamp,
      Value: p.value,
      Unit: opts.unit ?? 'Percent',
    }));
    // PutMetricData takes at most 1000 data per call.
    for (let i = 0; i < data.length; i += 500) {
      await cw.send(new PutMetricDataCommand({ Namespace: opts.namespace ?? 'AWS/EC2', MetricData: data.slice(i, i + 500) }));
    }
  } finally {
    cw.destroy();
  }
}
