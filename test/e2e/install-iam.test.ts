/**
 * config/iam against the code: the IAM policy allows exactly the AWS operations that
 * src/ can call — derived from the SDK commands the cloud layer constructs — each
 * scoped as tightly as AWS allows, and the IRSA trust policy admits only the chart's
 * ServiceAccount. Adding an SDK call without a policy update fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { renderChart, parseManifests } from '../../hack/chart/render.js';
import { CONFIG_NAMESPACE, CONFIG_RELEASE } from '../../hack/chart/gen-config.js';
import { repoRoot } from '../testbed/binaries.js';
import { SESSION_TAG_NAMESPACE, SESSION_TAG_POLICY } from '../../src/cloud/location.js';
import { testbedFromEnv } from './harness.js';

/** @aws-sdk/client-<package> → IAM service prefix. A new client needs a line here (and a policy statement). */
const IAM_PREFIX: Record<string, string> = {
  ec2: 'ec2',
  ssm: 'ssm',
  sns: 'sns',
  cloudwatch: 'cloudwatch',
  sts: 'sts',
  'cloudwatch-logs': 'logs',
  s3: 's3',
};
/** SDK operations whose IAM action has another name. */
const IAM_ACTION_OF: Record<string, string> = { 's3:ListObjectsV2': 's3:ListBucket' };
/**
 * Calls only `kubectl remediator history -A` makes, with the reader's own credentials
 * (src/cli/history.ts; config/iam/audit-reader-policy.json), never the controller.
 */
const READER_ONLY = new Set(['logs:DescribeLogStreams']);
/** The audit sink's actions: the controller's own account only, never a workload role's (src/cloud/audit-sink.ts). */
const isAuditAction = (a: string) => a.startsWith('logs:') || a.startsWith('s3:');
/**
 * STS calls that need no permissions policy: AssumeRoleWithWebIdentity is granted by the
 * role's trust policy, GetCallerIdentity by nobody (AWS always allows it).
 */
const NO_POLICY_STS = new Set(['AssumeRoleWithWebIdentity', 'GetCallerIdentity']);
/** SDK credential providers that call AWS on our behalf: `fromTemporaryCredentials` assumes a role, with session tags. */
const PROVIDER_ACTIONS: Record<string, string[]> = { fromTemporaryCredentials: ['sts:AssumeRole', 'sts:TagSession'] };
/**
 * Actions AWS authorizes only on Resource "*" (Service Authorization Reference: no
 * resource types). They must be limited by region instead; every other action must
 * name its resources.
 */
const NO_RESOURCE_LEVEL = new Set([
  'ec2:DescribeInstances',
  'cloudwatch:GetMetricData',
  'ssm:ListCommands',
  'ssm:GetCommandInvocation',
  'ssm:DescribeInstanceInformation',
  'ssm:CancelCommand',
]);

interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
  Principal?: Record<string, string>;
}

const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
const root = repoRoot();
const readJson = (path: string) => JSON.parse(readFileSync(join(root, path), 'utf8')) as { Version: string; Statement: Statement[] };

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

/** Every `new XxxCommand(` in src/, mapped through its import to `<prefix>:Xxx`. */
function actionsInCode(): Map<string, string[]> {
  const actions = new Map<string, string[]>();
  for (const file of tsFiles(join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const clientOf = new Map<string, string>();
    for (const m of text.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'@aws-sdk\/client-([a-z0-9-]+)'/g)) {
      for (const name of m[1]!.split(',').map(
        (s) =>
          s
            .trim()
            .replace(/^type\s+/, '')
            .split(/\s+as\s+/)
            .pop()!,
      ))
        clientOf.set(name, m[2]!);
    }
    for (const m of text.matchAll(/new\s+([A-Z][A-Za-z0-9]*)Command\s*\(/g)) {
      const client = clientOf.get(`${m[1]}Command`);
      if (!client)
        throw new Error(
          `${relative(root, file)}: new ${m[1]}Command( is not imported from an @aws-sdk/client-* package the test understands`,
        );
      if (client === 'sts' && NO_POLICY_STS.has(m[1]!)) continue;
      const prefix = IAM_PREFIX[client];
      if (!prefix)
        throw new Error(
          `${relative(root, file)} calls @aws-sdk/client-${client}: add its IAM prefix to IAM_PREFIX and its actions to config/iam/policy.json`,
        );
      const action = IAM_ACTION_OF[`${prefix}:${m[1]}`] ?? `${prefix}:${m[1]}`;
      if (READER_ONLY.has(action)) continue;
      actions.set(action, [...(actions.get(action) ?? []), relative(root, file)]);
    }
    for (const m of text.matchAll(/\b(from[A-Z][A-Za-z]*)\(\{/g)) {
      for (const action of PROVIDER_ACTIONS[m[1]!] ?? []) actions.set(action, [...(actions.get(action) ?? []), relative(root, file)]);
    }
  }
  return actions;
}

describe('config/iam/policy.json', () => {
  const policy = readJson('config/iam/policy.json');
  const allows = policy.Statement.filter((s) => s.Effect === 'Allow');

  test('allows exactly the AWS operations the code calls, and nothing else', () => {
    const inCode = actionsInCode();
    // The scan sees the calls (a regression guard for the scan itself).
    expect([...inCode.keys()]).toEqual(expect.arrayContaining(['ec2:DescribeInstances', 'ssm:SendCommand', 'sts:AssumeRole']));
    const allowed = new Set(allows.flatMap((s) => list(s.Action)));
    expect([...allowed].sort()).toEqual([...inCode.keys()].sort());
    // A Deny only narrows what is allowed.
    for (const s of policy.Statement.filter((st) => st.Effect === 'Deny'))
      for (const a of list(s.Action)) expect(allowed.has(a)).toBe(true);
  });

  test('only the cloud layer imports the AWS SDK, and the access-denied errors name actions the policy has', () => {
    const allowed = new Set(allows.flatMap((s) => list(s.Action)));
    for (const file of tsFiles(join(root, 'src'))) {
      const rel = relative(root, file);
      const text = readFileSync(file, 'utf8');
      if (/from '@aws-sdk\//.test(text))
        expect({ file: rel, inCloudLayer: rel.startsWith('src/cloud/') }).toEqual({ file: rel, inCloudLayer: true });
      for (const m of text.matchAll(/classifyAwsError\([^,]+,\s*'([a-z0-9]+:[A-Za-z]+)'\)/g)) expect(allowed.has(m[1]!)).toBe(true);
      for (const m of text.matchAll(/this\.call\('[A-Za-z]+',\s*'([a-z0-9]+:[A-Za-z]+)'/g))
        expect(allowed.has(m[1]!) || READER_ONLY.has(m[1]!)).toBe(true);
    }
  });

  test('every action is scoped as tightly as AWS allows', () => {
    expect(policy.Version).toBe('2012-10-17');
    for (const s of policy.Statement) {
      for (const a of list(s.Action)) expect(a).not.toMatch(/\*/);
      const resources = list(s.Resource);
      for (const a of list(s.Action)) {
        if (NO_RESOURCE_LEVEL.has(a)) {
          expect(resources).toEqual(['*']);
          expect(s.Condition?.['StringEquals']?.['aws:RequestedRegion']).toBe('${AWS_REGION}');
        } else {
          expect(resources).not.toContain('*');
        }
      }
    }
    const send = allows.filter((s) => list(s.Action).includes('ssm:SendCommand'));
    // Documents: exactly the chart's default allowlist, AWS-owned document ARNs (no account).
    const documents = send.flatMap((s) => list(s.Resource)).filter((r) => r.includes(':document/'));
    expect(documents).toEqual(['arn:aws:ssm:${AWS_REGION}::document/AWS-RunShellScript']);
    const chartValues = readFileSync(join(root, 'charts', 'remediator', 'values.yaml'), 'utf8');
    expect(
      /allowedDocuments:\n((?:\s+- .+\n)+)/
        .exec(chartValues)?.[1]
        ?.trim()
        .split('\n')
        .map((l) => l.replace(/^\s*-\s*/, '')),
    ).toEqual(['AWS-RunShellScript']);
    // Instances: only those carrying the opt-in tag; never those carrying the opt-out tag.
    const onInstances = send.find((s) => list(s.Resource).some((r) => r.includes(':instance/')));
    expect(onInstances?.Condition).toEqual({ StringEquals: { 'ssm:resourceTag/remediator.dev/managed': 'true' } });
    const deny = policy.Statement.find((s) => s.Effect === 'Deny');
    expect(deny).toMatchObject({
      Action: ['ssm:SendCommand'],
      Condition: { StringEquals: { 'ssm:resourceTag/remediator.dev/opt-out': 'true' } },
    });
    // SNS: named topics only.
    const publish = allows.find((s) => list(s.Action).includes('sns:Publish'));
    for (const r of list(publish!.Resource)) expect(r).toMatch(/^arn:aws:sns:\$\{AWS_REGION\}:\$\{AWS_ACCOUNT_ID\}:\$\{[A-Z_]+\}$/);
    // Role chaining: only the named workload roles, and nothing else in that statement.
    const assume = allows.filter((s) => list(s.Action).some((a) => a.startsWith('sts:')));
    expect(assume).toEqual([
      expect.objectContaining({
        Action: ['sts:AssumeRole', 'sts:TagSession'],
        Resource: ['arn:aws:iam::${WORKLOAD_ACCOUNT_ID}:role/${WORKLOAD_ROLE_NAME}'],
      }),
    ]);
  });
});

describe('config/iam/workload-role-policy.json (the role a Runbook assumes in another account)', () => {
  const workload = readJson('config/iam/workload-role-policy.json');
  const controller = readJson('config/iam/policy.json');
  const actions = (p: typeof workload, effect: 'Allow' | 'Deny') =>
    [...new Set(p.Statement.filter((s) => s.Effect === effect).flatMap((s) => list(s.Action)))].sort();

  test("allows what the controller's own policy allows, except assuming further roles: no role chains on from there", () => {
    expect(actions(workload, 'Allow')).toEqual(actions(controller, 'Allow').filter((a) => !a.startsWith('sts:') && !isAuditAction(a)));
    expect(actions(workload, 'Deny')).toEqual(actions(controller, 'Deny'));
    for (const s of workload.Statement) {
      for (const a of list(s.Action)) {
        if (NO_RESOURCE_LEVEL.has(a)) expect(s.Condition?.['StringEquals']?.['aws:RequestedRegion']).toBe('${AWS_REGION}');
        else expect(list(s.Resource)).not.toContain('*');
      }
    }
  });

  test('sends commands only to managed instances of the team whose request it is (the session tag)', () => {
    const onInstances = workload.Statement.find((s) => s.Effect === 'Allow' && list(s.Resource).some((r) => r.includes(':instance/')));
    expect(list(onInstances!.Resource)).toEqual(['arn:aws:ec2:${AWS_REGION}:${WORKLOAD_ACCOUNT_ID}:instance/*']);
    expect(onInstances!.Condition).toEqual({
      StringEquals: {
        'ssm:resourceTag/remediator.dev/managed': 'true',
        'ssm:resourceTag/team': `\${aws:PrincipalTag/${SESSION_TAG_NAMESPACE}}`,
      },
    });
  });

  test("its trust policy admits only the controller's role, with the external id and exactly remediator's session tags", () => {
    const trust = readJson('config/iam/workload-trust-policy.json');
    const principal = { AWS: 'arn:aws:iam::${AWS_ACCOUNT_ID}:role/${CONTROLLER_ROLE_NAME}' };
    expect(trust.Statement.map((s) => [s.Effect, s.Action, s.Principal])).toEqual([
      ['Allow', 'sts:AssumeRole', principal],
      ['Allow', 'sts:TagSession', principal],
    ]);
    expect(trust.Statement[0]!.Condition).toEqual({
      StringEquals: { 'sts:ExternalId': '${EXTERNAL_ID}' },
      Null: { [`aws:RequestTag/${SESSION_TAG_NAMESPACE}`]: 'false', [`aws:RequestTag/${SESSION_TAG_POLICY}`]: 'false' },
    });
    expect(trust.Statement[1]!.Condition).toEqual({
      'ForAllValues:StringEquals': { 'aws:TagKeys': [SESSION_TAG_NAMESPACE, SESSION_TAG_POLICY] },
    });
  });
});

describe('config/iam/trust-policy.json (IRSA)', () => {
  test("lets only the chart's ServiceAccount assume the role, through the cluster's OIDC provider, for STS", async () => {
    const trust = readJson('config/iam/trust-policy.json');
    expect(trust.Statement).toHaveLength(1);
    const s = trust.Statement[0]!;
    expect(s.Effect).toBe('Allow');
    expect(s.Action).toBe('sts:AssumeRoleWithWebIdentity');
    expect(s.Principal).toEqual({ Federated: 'arn:aws:iam::${AWS_ACCOUNT_ID}:oidc-provider/${OIDC_PROVIDER}' });
    expect(Object.keys(s.Condition ?? {})).toEqual(['StringEquals']);
    expect(s.Condition!['StringEquals']).toEqual({
      '${OIDC_PROVIDER}:sub': 'system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}',
      '${OIDC_PROVIDER}:aud': 'sts.amazonaws.com',
    });
    // With the documented values it names the ServiceAccount the chart (and config/) creates.
    const objects = parseManifests(
      await renderChart({ helm: testbedFromEnv().binaries.helm, release: CONFIG_RELEASE, namespace: CONFIG_NAMESPACE }),
    );
    const sa = objects.find((o) => o.kind === 'ServiceAccount')!;
    const readme = readFileSync(join(root, 'config', 'iam', 'README.md'), 'utf8');
    expect(readme).toContain(`NAMESPACE=${sa.metadata.namespace} SERVICE_ACCOUNT=${sa.metadata.name}`);
  });

  test('the EKS Pod Identity trust policy is bound to one cluster of one account', () => {
    const s = readJson('config/iam/pod-identity-trust-policy.json').Statement[0]!;
    expect(s.Principal).toEqual({ Service: 'pods.eks.amazonaws.com' });
    expect(list(s.Action).sort()).toEqual(['sts:AssumeRole', 'sts:TagSession']);
    expect(s.Condition).toEqual({
      StringEquals: { 'aws:SourceAccount': '${AWS_ACCOUNT_ID}' },
      ArnEquals: { 'aws:SourceArn': 'arn:aws:eks:${AWS_REGION}:${AWS_ACCOUNT_ID}:cluster/${CLUSTER_NAME}' },
    });
  });
});
