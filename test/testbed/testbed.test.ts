// Smoke test of the test bed itself: if this fails, no other integration test can be
// believed. It checks each fact the suite relies on — the real API server version,
// RBAC, TokenRequest, the static token users, moto's EC2, the IRSA credential path,
// and the kubectl and helm binaries.

import { randomBytes } from 'node:crypto';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AuthenticationV1Api, CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { seedClientConfig, seedInstances } from './aws.js';
import { repoRoot } from './binaries.js';
import { isStatus } from './cluster.js';
import { testbedFromEnv } from './env.js';
import { loadKubeConfig } from './kubeconfig.js';
import { run } from './tools.js';

const tb = testbedFromEnv();
const suffix = randomBytes(3).toString('hex');

describe('test bed', () => {
  it('runs kube-apiserver v1.35.4', async () => {
    const version = await tb.admin().makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe('v1.35.4');
    expect(version.major).toBe('1');
    expect(version.minor).toBe('35');
  });

  it('enforces RBAC: an unbound token user is forbidden, the admin is not', async () => {
    const asMallory = tb.as('mallory').makeApiClient(CoreV1Api);
    const err = await asMallory.listNamespacedPod({ namespace: 'default' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStatus(err, 403)).toBe(true);

    const pods = await tb.admin().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'default' });
    expect(Array.isArray(pods.items)).toBe(true);
  });

  it('authenticates the static token users with their groups', async () => {
    const review = await tb.as('alice').makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(review.status?.userInfo?.username).toBe('alice');
    expect(review.status?.userInfo?.groups).toEqual(expect.arrayContaining(['sre', 'system:authenticated']));
  });

  it('issues ServiceAccount tokens through TokenRequest that authenticate as the ServiceAccount', async () => {
    const ns = `testbed-smoke-${suffix}`;
    const token = await tb.cluster.tokenForServiceAccount(ns, 'robot');
    const kc = loadKubeConfig(tb.cluster.kubeconfigForToken(token, `${ns}-robot`));
    const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${ns}:robot`);
    expect(review.status?.userInfo?.groups).toEqual(expect.arrayContaining(['system:serviceaccounts', `system:serviceaccounts:${ns}`]));
  });

  it('answers EC2 DescribeInstances from moto for seeded, tagged instances', async () => {
    const env = `smoke-${suffix}`;
    const ids = await seedInstances(tb.motoEndpoint, { count: 3, tags: { Environment: env, Team: 'sre' }, region: tb.region });
    const ec2 = new EC2Client(seedClientConfig(tb.motoEndpoint, tb.region));
    try {
      const res = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Environment', Values: [env] }] }));
      const instances = (res.Reservations ?? []).flatMap((r) => r.Instances ?? []);
      expect(instances.map((i) => i.InstanceId).sort()).toEqual([...ids].sort());
      for (const i of instances) {
        expect(i.State?.Name).toBe('running');
        expect(i.Tags).toEqual(expect.arrayContaining([{ Key: 'Team', Value: 'sre' }]));
      }
    } finally {
      ec2.destroy();
    }
  });

  it('targets only the named instances with a SendCommand by InstanceIds, as AWS does (moto_server.py)', async () => {
    // moto 5.2.1 alone adds every instance of the region to such a command.
    const ids = await seedInstances(tb.motoEndpoint, { count: 3, tags: { Environment: `send-${suffix}` }, region: tb.region });
    const ssm = new SSMClient({ ...seedClientConfig(tb.motoEndpoint, tb.region), maxAttempts: 1 });
    try {
      const sent = await ssm.send(
        new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: [ids[0]!], Parameters: { commands: ['true'] } }),
      );
      const commandId = sent.Command?.CommandId;
      expect(sent.Command?.InstanceIds).toEqual([ids[0]]);
      const listed = await ssm.send(new ListCommandsCommand({ CommandId: commandId }));
      expect(listed.Commands?.map((c) => [c.InstanceIds, c.TargetCount])).toEqual([[[ids[0]], 1]]);
      const own = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: ids[0] }));
      expect(own.InstanceId).toBe(ids[0]);
      const other = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: ids[1] })).then(
        () => undefined,
        (e: unknown) => (e as { name?: string }).name,
      );
      expect(other).toBe('InvocationDoesNotExist');
    } finally {
      ssm.destroy();
    }
  });

  it('gives a child process on awsEnv() credentials from STS AssumeRoleWithWebIdentity, never a static key', async () => {
    const [id] = await seedInstances(tb.motoEndpoint, { tags: { Name: `irsa-${suffix}` }, region: tb.region });
    // What the controller does: default credential chain, no explicit credentials or endpoint.
    const script = `
      import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
      import { EC2Client, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
      const creds = await fromNodeProviderChain()();
      const ec2 = new EC2Client({});
      const res = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [process.argv[1]] }));
      console.log(JSON.stringify({
        accessKeyId: creds.accessKeyId, hasSessionToken: Boolean(creds.sessionToken),
        envKey: process.env.AWS_ACCESS_KEY_ID ?? null,
        found: res.Reservations?.[0]?.Instances?.[0]?.InstanceId ?? null,
      }));`;
    const base = { ...process.env, AWS_ACCESS_KEY_ID: 'AKIASTATICLEAK', AWS_SECRET_ACCESS_KEY: 'leak', AWS_PROFILE: 'leak' };
    const env = tb.awsEnv({ base });
    expect(env['AWS_ACCESS_KEY_ID']).toBeUndefined();
    expect(env['AWS_SECRET_ACCESS_KEY']).toBeUndefined();
    expect(env['AWS_PROFILE']).toBeUndefined();
    const res = await run(process.execPath, ['--input-type=module', '-e', script, id!], { env, cwd: repoRoot() });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as { accessKeyId: string; hasSessionToken: boolean; envKey: string | null; found: string };
    // moto's STS hands out temporary keys (ASIA…) with a session token.
    expect(out.accessKeyId).toMatch(/^ASIA/);
    expect(out.hasSessionToken).toBe(true);
    expect(out.envKey).toBeNull();
    expect(out.found).toBe(id);
  });

  it('runs kubectl and helm against the test bed', async () => {
    const kubectl = await tb.kubectl(['version', '-o', 'json']);
    expect(kubectl.code).toBe(0);
    const versions = JSON.parse(kubectl.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    expect(versions.serverVersion.gitVersion).toBe('v1.35.4');
    expect(versions.clientVersion.gitVersion).toMatch(/^v1\.35\./);

    const denied = await tb.kubectl(['get', 'pods', '-n', 'default'], { user: 'mallory' });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/forbidden/i);

    const helm = await tb.helm(['version', '--short']);
    expect(helm.code).toBe(0);
    expect(helm.stdout).toMatch(/^v\d+\./);
    const helmLs = await tb.helm(['list', '-A', '-o', 'json']);
    expect(helmLs.code).toBe(0);
    expect(JSON.parse(helmLs.stdout)).toEqual([]);
  });

  it('has installed the repo CRDs, if the repo has any', async () => {
    for (const name of tb.manifest.crds) {
      const res = await run(tb.binaries.kubectl, ['--kubeconfig', tb.cluster.adminKubeconfig, 'get', 'crd', name, '-o', 'name']);
      expect(res.stdout.trim()).toBe(`customresourcedefinition.apiextensions.k8s.io/${name}`);
    }
  });
});
