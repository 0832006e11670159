/**
 * The install guide, executed: the shell blocks of README.md's quick start and of
 * docs/install.md's step-by-step install are run in order, in one bash with `set -euo
 * pipefail`, against a fresh cluster of their own (etcd and kube-apiserver, as a new
 * user's cluster is: nothing of the shared test bed's CRDs or admission policies), with
 * the real kubectl, helm, envsubst, jq, sed and git.
 *
 * What cannot run here is stubbed by name through PATH shims that record their
 * arguments (and the files they are given with `file://`): `aws` (EKS, ECR, IAM, STS and
 * the EC2 tags of instances that do not exist here), `eksctl`, `docker`, and `kubectl
 * logs` (no kubelet runs a pod here). The list of stubbed calls is printed and checked.
 *
 * Then the outcome is checked the way the controller would find it, so that a wrong
 * sample, flag or step fails here rather than for a user:
 * - every object of config/samples the guide applies exists (a concatenation without
 *   `---` creates only the last one and still exits 0);
 * - the Deployment's image is the one the guide built and pushed (else ImagePullBackOff);
 * - every AlertPolicy's namespace is granted its Runbook (else `RunbookNotGranted`), and
 *   the instances the guide tags carry every tag of the Runbook's scope, `{{ namespace }}`
 *   resolved (else `TargetOutOfScope`);
 * - the IAM documents the guide hands to AWS are JSON with nothing left unsubstituted,
 *   the role's trust names the ServiceAccount the chart created, and that ServiceAccount
 *   names the role; EKS Pod Identity comes with its agent add-on.
 *
 * The kustomize install is run too (`make deploy`), then `make undeploy`, which must keep
 * the namespace with the execution ledger and the intake token; and the controller
 * started without a kubeconfig must say so in one log line, not a stack trace.
 *
 * A block preceded by `<!-- install-guide: skip (why) -->` is not run (placeholders a
 * reader fills in, like a request's name).
 */
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { repoRoot } from '../testbed/binaries.js';
import { startControlPlane, type ControlPlane } from '../testbed/controlplane.js';
import { testbedFromEnv } from '../testbed/env.js';
import { newRunDir } from '../testbed/layout.js';
import { run, toolEnv, type RunResult } from '../testbed/tools.js';
import { pluginPath } from './install-chart.js';

const ROOT = repoRoot();

interface GuideBlock {
  where: string;
  text: string;
}

/** The `sh` blocks of `doc` between the heading `from` and the next heading of the same level. */
function guideBlocks(doc: string, from: string): GuideBlock[] {
  const text = readFileSync(join(ROOT, doc), 'utf8');
  const start = text.indexOf(`\n${from}\n`);
  if (start < 0) throw new Error(`${doc} has no heading ${JSON.stringify(from)}`);
  const level = /^#+/.exec(from)![0];
  const next = text.slice(start + from.length + 2).search(new RegExp(`^${level} `, 'm'));
  const end = next < 0 ? text.length : start + from.length + 2 + next;
  const section = text.slice(start, end);
  const offset = text.slice(0, start).split('\n').length;
  return [...section.matchAll(/^```(?:sh|bash)\n(.*?)^```$/gms)]
    .filter((m) => !/<!-- install-guide: skip[^>]*-->\s*$/.test(section.slice(0, m.index)))
    .map((m) => ({ where: `${doc}:${offset + section.slice(0, m.index).split('\n').length - 1}`, text: m[1]! }));
}

// --- the shims -----------------------------------------------------------------

/** What a stubbed call answers: the few outputs the guide reads back. */
const SHIM = String.raw`
import { appendFileSync, readFileSync } from 'node:fs';
const [tool, ...args] = process.argv.slice(2);
const files = {};
for (const a of args) {
  const m = /^file:\/\/(.+)$/.exec(a);
  if (m) files[m[1]] = readFileSync(m[1], 'utf8');
}
if (tool === 'docker' && args[0] === 'login') readFileSync(0);
appendFileSync(process.env.GUIDE_RECORD, JSON.stringify({ tool, args, files }) + '\n');
const call = args.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ');
const out = (s) => process.stdout.write(s + '\n');
if (tool === 'aws' && call === 'sts get-caller-identity') out(args.includes('--query') ? '111122223333' : '{"Account":"111122223333"}');
else if (tool === 'aws' && call === 'eks describe-cluster') out('https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE');
else if (tool === 'aws' && call === 'iam list-open-id-connect-providers') out('{"OpenIDConnectProviderList": []}');
else if (tool === 'aws' && call === 'ecr get-login-password') out('not-a-password');
else if (tool === 'kubectl') out('{"level":"info","msg":"kubectl logs is stubbed: no kubelet runs pods in the test bed"}');
else if (tool === 'aws') out('{}');
`;

interface Recorded {
  tool: string;
  args: string[];
  files: Record<string, string>;
}

function writeShims(dir: string, kubectl: string): void {
  mkdirSync(dir, { recursive: true });
  const shim = join(dir, 'shim.mjs');
  writeFileSync(shim, SHIM);
  for (const tool of ['aws', 'eksctl', 'docker']) {
    writeFileSync(join(dir, tool), `#!/bin/sh\nexec "${process.execPath}" "${shim}" ${tool} "$@"\n`);
    chmodSync(join(dir, tool), 0o755);
  }
  // kubectl is the real one, except `logs`: there is no pod to read.
  writeFileSync(
    join(dir, 'kubectl'),
    `#!/bin/sh\nfor a in "$@"; do [ "$a" = logs ] && exec "${process.execPath}" "${shim}" kubectl "$@"; done\nexec "${kubectl}" "$@"\n`,
  );
  chmodSync(join(dir, 'kubectl'), 0o755);
}

/** A stubbed call as it is listed: the tool and its first two words (`aws iam create-role`). */
const callName = (r: Recorded) =>
  r.tool === 'kubectl' ? 'kubectl logs' : [r.tool, ...r.args.slice(0, r.tool === 'docker' ? 1 : 2)].join(' ');

const argAfter = (r: Recorded, flag: string) => {
  const i = r.args.indexOf(flag);
  return i < 0 ? undefined : r.args[i + 1];
};

// --- running a guide -----------------------------------------------------------

interface GuideRun {
  result: RunResult;
  calls: Recorded[];
  script: string;
}

/** `inRepo`: run in the checkout itself (the guide runs `make`), else in a scratch copy of what it reads. */
async function runGuide(cp: ControlPlane, name: string, blocks: GuideBlock[], inRepo = false): Promise<GuideRun> {
  const tb = testbedFromEnv();
  const dir = join(cp.dir, name);
  const work = join(dir, 'work');
  mkdirSync(join(work, 'home'), { recursive: true });
  // What the guide reads from the checkout; its files (policy.json, token, ...) land here, not in the repository.
  for (const p of ['charts', 'config', 'Dockerfile']) cpSync(join(ROOT, p), join(work, p), { recursive: true });
  const shims = join(dir, 'bin');
  writeShims(shims, tb.binaries.kubectl);
  const record = join(dir, 'calls.jsonl');
  writeFileSync(record, '');
  const script = [
    'set -euo pipefail',
    `trap 'echo "install-guide: failed at \${GUIDE_BLOCK}: \${BASH_COMMAND}" >&2' ERR`,
    ...blocks.flatMap((b) => [`GUIDE_BLOCK=${b.where}`, b.text]),
  ].join('\n');
  writeFileSync(join(dir, 'guide.sh'), script);
  const gitDir = execFileSync('git', ['rev-parse', '--absolute-git-dir'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const env = {
    ...toolEnv(cp.adminKubeconfig, join(dir, 'tool-state')),
    HOME: join(work, 'home'),
    GIT_DIR: gitDir,
    GUIDE_RECORD: record,
    PATH: [shims, dirname(tb.binaries.helm), pluginPath(tb), process.env['PATH'] ?? ''].join(':'),
  };
  const result = await run('bash', [join(dir, 'guide.sh')], { cwd: inRepo ? ROOT : work, env, timeoutMs: 240_000 });
  const calls = readFileSync(record, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Recorded);
  console.log(`${name}: stubbed calls, in order:\n${calls.map((c) => `  ${c.tool} ${c.args.join(' ')}`).join('\n')}`);
  return { result, calls, script };
}

/** kubectl as the cluster's admin. */
function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<RunResult> {
  return run(testbedFromEnv().binaries.kubectl, args, {
    env: toolEnv(cp.adminKubeconfig, join(cp.dir, 'check-state')),
    ...(input !== undefined && { input }),
  });
}

// --- reading the cluster back ----------------------------------------------------

type Obj = Record<string, any>;

async function get(cp: ControlPlane, args: string[]): Promise<Obj[]> {
  const tb = testbedFromEnv();
  const r = await run(tb.binaries.kubectl, ['get', ...args, '-o', 'json'], {
    env: toolEnv(cp.adminKubeconfig, join(cp.dir, 'check-state')),
  });
  if (r.code !== 0) throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr}`);
  const parsed = JSON.parse(r.stdout) as Obj;
  return (parsed['items'] as Obj[] | undefined) ?? [parsed];
}

/** The objects of config/samples a guide applies, by kind and name. */
function sampleObjects(pattern: RegExp): string[] {
  const dir = join(ROOT, 'config', 'samples');
  return execFileSync('ls', [dir], { encoding: 'utf8' })
    .split('\n')
    .filter((f) => pattern.test(f))
    .map((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      const kind = /^kind: (\S+)/m.exec(text)![1]!;
      const name = /^metadata:\n(?:\s+.*\n)*?\s+name: (\S+)/m.exec(text)![1]!;
      return `${kind}/${name}`;
    });
}

/** Tags set by the recorded `aws ec2 create-tags` calls, per instance id. */
function taggedInstances(calls: Recorded[]): Map<string, Record<string, string>> {
  const tags = new Map<string, Record<string, string>>();
  for (const c of calls.filter((c) => callName(c) === 'aws ec2 create-tags')) {
    const ri = c.args.indexOf('--resources');
    const ti = c.args.indexOf('--tags');
    const ids = c.args.slice(ri + 1).filter((_, i, a) => !a.slice(0, i + 1).some((x) => x.startsWith('--')));
    const pairs = c.args
      .slice(ti + 1)
      .filter((_, i, a) => !a.slice(0, i + 1).some((x) => x.startsWith('--')))
      .map((t) => /^Key=([^,]+),Value=(.*)$/.exec(t))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!] as const);
    for (const id of ids) tags.set(id, { ...tags.get(id), ...Object.fromEntries(pairs) });
  }
  return tags;
}

/** What a user would meet when the controller runs, read from what the guide left behind. */
async function problems(cp: ControlPlane, run: GuideRun, samples: string[]): Promise<string[]> {
  const found: string[] = [];
  const policies = await get(cp, ['alertpolicies.remediator.dev', '-A']);
  const runbooks = await get(cp, ['runbooks.remediator.dev']);
  const have = new Set([...policies, ...runbooks].map((o) => `${o['kind']}/${o['metadata'].name}`));
  for (const s of samples) if (!have.has(s)) found.push(`${s} of config/samples was not created`);

  const tagged = taggedInstances(run.calls);
  for (const p of policies) {
    const ns = p['metadata'].namespace as string;
    const rb = runbooks.find((r) => r['metadata'].name === p['spec'].runbookRef?.name);
    if (!rb) continue; // reported above when it is a sample
    const selector = Object.entries((rb['spec'].namespaceSelector?.matchLabels ?? {}) as Record<string, string>)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const granted = (await get(cp, ['namespaces', '-l', selector])).map((n) => n['metadata'].name);
    if (!granted.includes(ns))
      found.push(`RunbookNotGranted: namespace ${ns} is not selected by Runbook ${rb['metadata'].name} (${selector})`);
    const scope = Object.entries((rb['spec'].scope?.tagSelector ?? {}) as Record<string, string>).map(
      ([k, v]) => [k, v.replaceAll('{{ namespace }}', ns)] as const,
    );
    const inScope = [...tagged].filter(([, t]) => scope.every(([k, v]) => t[k] === v));
    if (inScope.length === 0)
      found.push(
        `TargetOutOfScope: no instance the guide tags carries ${scope.map(([k, v]) => `${k}=${v}`).join(', ')} (Runbook ${rb['metadata'].name}, policy ${ns}/${p['metadata'].name})`,
      );
  }

  const deployments = await get(cp, ['deployments', '-A', '-l', 'app.kubernetes.io/name=remediator']);
  if (deployments.length !== 1) found.push(`expected one remediator Deployment, found ${deployments.length}`);
  const pushed = run.calls.filter((c) => callName(c) === 'docker push').map((c) => c.args[1]);
  for (const d of deployments) {
    const pod = d['spec'].template.spec;
    const image = pod.containers[0].image as string;
    if (!pushed.includes(image))
      found.push(`ImagePullBackOff: the Deployment runs ${image}, but the guide pushed ${pushed.join(', ') || 'nothing'}`);
    const ns = d['metadata'].namespace as string;
    const sa = (await get(cp, ['serviceaccount', '-n', ns, pod.serviceAccountName]))[0]!;
    const roleArn = sa['metadata'].annotations?.['eks.amazonaws.com/role-arn'] as string | undefined;
    const roles = run.calls.filter((c) => callName(c) === 'aws iam create-role');
    if (roleArn && !roles.some((r) => roleArn.endsWith(`:role/${argAfter(r, '--role-name')}`)))
      found.push(`ServiceAccount ${ns}/${sa['metadata'].name} names ${roleArn}, a role the guide never created`);
    for (const r of roles) {
      for (const doc of Object.values(r.files)) {
        const subs = doc.match(/"system:serviceaccount:[^"]*"/g) ?? [];
        for (const s of subs)
          if (s !== `"system:serviceaccount:${ns}:${sa['metadata'].name}"`)
            found.push(`the role's trust policy names ${s}, but the chart's ServiceAccount is ${ns}/${sa['metadata'].name}`);
      }
    }
    for (const a of run.calls.filter((c) => callName(c) === 'aws eks create-pod-identity-association')) {
      if (argAfter(a, '--namespace') !== ns || argAfter(a, '--service-account') !== sa['metadata'].name)
        found.push(
          `the Pod Identity association names ${argAfter(a, '--namespace')}/${argAfter(a, '--service-account')}, not ${ns}/${sa['metadata'].name}`,
        );
    }
  }

  for (const c of run.calls) {
    for (const [path, doc] of Object.entries(c.files)) {
      if (/\$\{?[A-Z_]+\}?/.test(doc)) found.push(`${callName(c)}: ${path} still has ${/\$\{?[A-Z_]+\}?/.exec(doc)![0]}`);
      try {
        JSON.parse(doc);
      } catch {
        found.push(`${callName(c)}: ${path} is not JSON`);
      }
    }
  }
  const association = run.calls.findIndex((c) => callName(c) === 'aws eks create-pod-identity-association');
  const agent = run.calls.findIndex(
    (c) => (callName(c) === 'aws eks create-addon' || callName(c) === 'eksctl create addon') && c.args.includes('eks-pod-identity-agent'),
  );
  if (association >= 0 && (agent < 0 || agent > association))
    found.push('EKS Pod Identity is associated, but the Pod Identity Agent add-on (eks-pod-identity-agent) is not installed first');
  return found;
}

/** Every stubbed call is one this test bed cannot make: EKS, ECR, IAM (and STS/EC2 of an account that is not here), docker, eksctl. */
function unexpectedStubs(calls: Recorded[]): string[] {
  const allowed = /^(aws (sts|eks|ecr|iam|ec2) |eksctl |docker (login|build|push) |kubectl logs )/;
  return calls.map(callName).filter((n) => !allowed.test(`${n} `));
}

describe('the install guide, executed', () => {
  /** Control planes started here: each guide gets a fresh cluster, as a new user has. */
  const planes: ControlPlane[] = [];
  afterAll(async () => {
    for (const cp of planes) await cp.stop();
  });

  async function freshCluster(name: string): Promise<ControlPlane> {
    const cp = await startControlPlane({ binaries: testbedFromEnv().binaries, dir: newRunDir(name) });
    planes.push(cp);
    // Alertmanager's namespace, where the guides hand it the intake token.
    const r = await run(testbedFromEnv().binaries.kubectl, ['create', 'namespace', 'monitoring'], {
      env: toolEnv(cp.adminKubeconfig, join(cp.dir, 'setup-state')),
    });
    if (r.code !== 0) throw new Error(r.stderr);
    return cp;
  }

  const expectRan = (g: GuideRun) => {
    if (g.result.code !== 0)
      throw new Error(`the guide failed (exit ${g.result.code}):\n${g.result.stderr.slice(-4000)}\n${g.result.stdout.slice(-2000)}`);
  };

  test("README.md's quick start on EKS runs, and leaves nothing a user would trip over", async () => {
    const cp = await freshCluster('readme');
    const blocks = guideBlocks('README.md', '## Quick start on EKS');
    expect(blocks.length).toBeGreaterThan(0);
    const g = await runGuide(cp, 'readme', blocks);
    expectRan(g);
    expect(await problems(cp, g, sampleObjects(/\.yaml$/))).toEqual([]);
    expect(unexpectedStubs(g.calls)).toEqual([]);
    expect(g.calls.map(callName)).toEqual(
      expect.arrayContaining(['aws iam create-policy', 'aws iam create-role', 'aws ec2 create-tags', 'docker push']),
    );
    // The intake token reached Alertmanager's namespace, and is the chart's.
    const [theirs] = await get(cp, ['secret', '-n', 'monitoring', 'remediator-intake-token']);
    const [ours] = await get(cp, ['secret', '-n', 'remediator-system', 'remediator-intake-token']);
    expect(theirs!['data'].token).toBe(ours!['data'].token);
  }, 300_000);

  test('docs/install.md, step by step (IRSA, then EKS Pod Identity), runs, and leaves nothing a user would trip over', async () => {
    const cp = await freshCluster('installmd');
    const blocks = guideBlocks('docs/install.md', '## Install on EKS with IRSA, step by step');
    expect(blocks.length).toBeGreaterThan(5);
    const g = await runGuide(cp, 'install-md', blocks);
    expectRan(g);
    expect(await problems(cp, g, sampleObjects(/\.yaml$/))).toEqual([]);
    expect(unexpectedStubs(g.calls)).toEqual([]);
    expect(g.calls.map(callName)).toEqual(
      expect.arrayContaining([
        'aws ecr create-repository',
        'aws iam create-policy',
        'aws iam create-role',
        'aws iam attach-role-policy',
        'aws eks create-addon',
        'aws eks create-pod-identity-association',
        'docker push',
      ]),
    );
  }, 300_000);

  test('docs/install.md with kustomize: make deploy, then make undeploy keeps the CRDs, the ledger and the intake token', async () => {
    const cp = await freshCluster('kustomize');
    const blocks = guideBlocks('docs/install.md', '## Install with kustomize (`config/`)');
    expect(blocks.length).toBe(1);
    const g = await runGuide(cp, 'kustomize', blocks, true);
    expectRan(g);
    expect((await get(cp, ['deployment', '-n', 'remediator-system', 'remediator']))[0]!['spec'].template.spec.containers[0].image).toMatch(
      /\/remediator:/,
    );
    // What the controller writes there while it runs: a policy's execution ledger.
    const ledger = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'remediator-ledger-guide', namespace: 'remediator-system', labels: { 'remediator.dev/ledger': 'true' } },
      data: { namespace: 'payments', policy: 'restart-nginx', executions: '' },
    };
    expect((await kubectl(cp, ['create', '-f', '-'], JSON.stringify(ledger))).code).toBe(0);
    const undeploy = await run('make', ['undeploy'], {
      cwd: ROOT,
      env: {
        ...toolEnv(cp.adminKubeconfig, join(cp.dir, 'make-state')),
        PATH: `${dirname(testbedFromEnv().binaries.kubectl)}:${process.env['PATH'] ?? ''}`,
      },
      timeoutMs: 120_000,
    });
    expect(undeploy.code).toBe(0);
    expect((await kubectl(cp, ['get', 'deployment', '-n', 'remediator-system', 'remediator'])).stderr).toContain('NotFound');
    expect((await kubectl(cp, ['get', 'clusterrole', 'remediator-controller'])).stderr).toContain('NotFound');
    for (const kept of [
      ['namespace', 'remediator-system'],
      ['configmap', '-n', 'remediator-system', 'remediator-ledger-guide'],
      ['secret', '-n', 'remediator-system', 'remediator-intake-token'],
      ['crd', 'runbooks.remediator.dev'],
    ]) {
      const r = await kubectl(cp, ['get', ...kept, '-o', 'name']);
      expect({ kept, code: r.code, stderr: r.stderr }).toEqual({ kept, code: 0, stderr: '' });
    }
  }, 300_000);

  test('the controller without a kubeconfig says so in one log line and exits 2, without a stack trace', async () => {
    const env = { PATH: process.env['PATH'] ?? '', HOME: newRunDir('nokube'), KUBECONFIG: '/nowhere/kubeconfig' };
    const main = join(ROOT, 'dist', 'controller', 'main.js');
    const missing = await run(process.execPath, [main], { env, timeoutMs: 30_000 });
    expect(missing.code).toBe(2);
    const lines = `${missing.stdout}${missing.stderr}`.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'fatal',
      msg: expect.stringContaining('KUBECONFIG names /nowhere/kubeconfig, which does not exist'),
    });
    // Nothing at all: not a silent fall-back to http://localhost:8080 retried forever.
    const none = await run(process.execPath, [main], { env: { PATH: env.PATH, HOME: env.HOME }, timeoutMs: 30_000 });
    expect(none.code).toBe(2);
    expect(none.stdout).toContain('no Kubernetes credentials');
  }, 60_000);
});
