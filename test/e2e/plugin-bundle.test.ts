/**
 * `make plugin`'s output as an approver gets it: four standalone executables (linux and
 * darwin, amd64 and arm64), their archives and a krew manifest.
 *
 * - krew itself (built from the Go module proxy, hack/plugin/build-krew.sh) validates
 *   the manifest with the krew index's rules and installs every platform's archive from
 *   it, checking each sha256; an archive under the wrong platform is refused.
 * - The linux/amd64 executable krew installed runs with no Node.js anywhere on PATH:
 *   kubectl dispatches `kubectl remediator list` and `approve` to it against the real
 *   API server.
 * - The darwin executables cannot run here: the test checks they are Mach-O for the
 *   right CPU, carry the application (the NODE_SEA segment, the fuse flipped) and an
 *   ad-hoc signature whose page hashes match the file; the checker itself is first held
 *   against the signature Apple's codesign put on the official node binary.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Plan } from '../../src/api/v1alpha1/index.js';
import { planDigest } from '../../src/controllers/plan-render.js';
import { bundlePlugin, renderKrewManifest, type PluginBuild } from '../../hack/plugin/bundle.js';
import { CPU_TYPE_ARM64, CPU_TYPE_X86_64, parseMachO, verifyCodeSignature } from '../../hack/plugin/macho.js';
import { nodeRuntime, PLATFORMS, platformName } from '../../hack/plugin/runtimes.js';
import { repoRoot } from '../testbed/binaries.js';
import { run } from '../testbed/tools.js';
import { must, suffix, writeStatus } from './install-chart.js';
import { Resources, testbedFromEnv } from './harness.js';

const tb = testbedFromEnv();
const version = (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
/** Node's marker that an executable carries an application (src/node_sea.cc's fuse). */
const SEA_FUSE_ON = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1';

interface KrewTools {
  krew: string;
  validate: string;
}

function buildKrew(): KrewTools {
  const out = execFileSync('bash', [join(repoRoot(), 'hack', 'plugin', 'build-krew.sh')], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/local/go/bin` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const get = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(out)?.[1] ?? '';
  return { krew: get('krew'), validate: get('validate-krew-manifest') };
}

describe('the standalone kubectl plugin', () => {
  let built: PluginBuild;
  let krew: KrewTools;
  const work = mkdtempSync(join(tmpdir(), 'kubectl-remediator-'));
  const archiveOf = (name: string) => built.platforms.find((p) => platformName(p.platform) === name)!;

  beforeAll(async () => {
    // Cold: four runtimes from npm (about 55 MB each) and krew from the Go proxy; then
    // cached under ~/.cache/remediator/plugin.
    krew = buildKrew();
    built = await bundlePlugin(PLATFORMS);
  }, 20 * 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("krew's index rules accept the manifest: one platform per archive, named and summed as built", async () => {
    const manifest = parse(readFileSync(built.manifest, 'utf8')) as {
      spec: {
        version: string;
        platforms: Array<{ selector: { matchLabels: Record<string, string> }; sha256: string; uri: string; bin: string }>;
      };
    };
    expect(manifest.spec.version).toBe(`v${version}`);
    expect(manifest.spec.platforms.map((p) => `${p.selector.matchLabels['os']}-${p.selector.matchLabels['arch']}`)).toEqual([
      'linux-amd64',
      'linux-arm64',
      'darwin-amd64',
      'darwin-arm64',
    ]);
    for (const p of manifest.spec.platforms) {
      const name = `${p.selector.matchLabels['os']}-${p.selector.matchLabels['arch']}`;
      const archive = archiveOf(name).archive;
      expect(p.sha256).toBe(createHash('sha256').update(readFileSync(archive)).digest('hex'));
      expect(p.uri.endsWith(`/kubectl-remediator-v${version}-${name}.tar.gz`)).toBe(true);
      expect(p.bin).toBe('kubectl-remediator');
    }
    const v = await run(krew.validate, ['-manifest', built.manifest, '-skip-install'], { env: { PATH: '/usr/bin:/bin' } });
    expect(v.code).toBe(0);
    expect(v.stderr).toContain('structural validation OK');
    expect(v.stderr).toContain('no overlapping spec.platform[].selector');
    expect(() => renderKrewManifest('v: ${VERSION}\nx: ${OTHER}', version, [])).toThrow('${OTHER}');
  });

  test("krew installs each platform from its archive, and refuses an archive whose sha256 is not the manifest's", async () => {
    for (const p of built.platforms) {
      const root = join(work, `krew-${platformName(p.platform)}`);
      const env = { PATH: '/usr/bin:/bin', HOME: work, KREW_ROOT: root, KREW_OS: p.platform.os, KREW_ARCH: p.platform.arch };
      must(
        await run(krew.krew, ['install', `--manifest=${built.manifest}`, `--archive=${p.archive}`], { env }),
        `krew install ${p.platform.os}/${p.platform.arch}`,
      );
      expect(readdirSync(join(root, 'store', 'remediator', `v${version}`)).sort()).toEqual([
        'LICENSE',
        'LICENSE.node',
        'kubectl-remediator',
      ]);
    }
    const root = join(work, 'krew-wrong');
    const wrong = await run(krew.krew, ['install', `--manifest=${built.manifest}`, `--archive=${archiveOf('linux-arm64').archive}`], {
      env: { PATH: '/usr/bin:/bin', HOME: work, KREW_ROOT: root, KREW_OS: 'linux', KREW_ARCH: 'amd64' },
    });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/checksum|sha256/i);
    expect(existsSync(join(root, 'bin', 'kubectl-remediator'))).toBe(false);
  });

  test('the linux/amd64 executable krew installed runs with no Node.js on PATH, through kubectl, against the API server', async () => {
    // PATH holds kubectl and krew's bin directory, nothing else: no node, no npm.
    const tools = join(work, 'tools');
    mkdirSync(tools);
    symlinkSync(tb.binaries.kubectl, join(tools, 'kubectl'));
    const path = `${tools}:${join(work, 'krew-linux-amd64', 'bin')}`;
    for (const dir of path.split(':')) expect(readdirSync(dir).filter((f) => /^(node|nodejs|npm)$/.test(f))).toEqual([]);
    const env = { PATH: path, HOME: work, KUBECONFIG: tb.cluster.adminKubeconfig };

    const v = must(await run(join(tools, 'kubectl'), ['remediator', '--version'], { env }), 'version');
    expect(v.stdout.trim()).toBe(`kubectl-remediator ${version} (remediator.dev/v1alpha1)`);

    const ns = `plugin-sea-${suffix()}`;
    await new Resources(tb.admin()).namespace(ns);
    const empty = await run(join(tools, 'kubectl'), ['remediator', 'list', '-n', ns], { env });
    expect(empty).toMatchObject({ code: 0, stdout: '', stderr: `No remediation requests found in ${ns} namespace.\n` });

    // A request waiting for approval, its plan written as the controller would.
    const body: Omit<Plan, 'digest'> = {
      runbook: { name: 'restart-service', generation: 1 },
      policyGeneration: 1,
      risk: 'Low',
      targets: ['i-0123456789abcdef0'],
      region: 'eu-west-1',
      ssm: {
        documentName: 'AWS-RunShellScript',
        parameters: { commands: ['systemctl restart nginx'] },
        timeoutSeconds: 600,
        maxConcurrency: '50',
        maxErrors: '0',
      },
    };
    const plan: Plan = { digest: planDigest(body), ...body };
    const rr = {
      apiVersion: 'remediator.dev/v1alpha1',
      kind: 'RemediationRequest',
      metadata: { name: 'sea-approve', namespace: ns },
      spec: { policyRef: { name: 'restart-nginx' }, alert: { source: 'alertmanager', name: 'NginxDown' } },
    };
    must(await tb.kubectl(['create', '-f', '-'], { input: JSON.stringify(rr) }), 'create request');
    await writeStatus(tb.cluster.adminKubeconfig, ns, 'sea-approve', { phase: 'AwaitingApproval', risk: 'Low', plan });

    const list = must(await run(join(tools, 'kubectl'), ['remediator', 'list', '-n', ns], { env }), 'list');
    expect(list.stdout).toMatch(/^sea-approve\s+restart-nginx\s+AwaitingApproval\s+Low\s/m);
    const approve = must(
      await run(join(tools, 'kubectl'), ['remediator', 'approve', 'sea-approve', '-n', ns, '--reason', 'standalone'], { env }),
      'approve',
    );
    expect(approve.stdout).toContain(`Digest:       ${plan.digest}`);
    const stored = await new Resources(tb.admin()).getRequest(ns, 'sea-approve');
    expect(stored.spec.approval).toMatchObject({ decision: 'Approved', reason: 'standalone', planDigest: plan.digest });

    // The page too is inside the one file.
    const ui = spawn(join(tools, 'kubectl'), ['remediator', 'ui', '-n', ns], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        ui.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          const m = /http:\/\/127\.0\.0\.1:\d+\/\S+\//.exec(out);
          if (m) resolve(m[0]);
        });
        ui.once('exit', (code) => reject(new Error(`ui exited (${code}): ${out}`)));
      });
      const page = await fetch(`${url}rr/${ns}/sea-approve`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(`Approved by ${stored.spec.approval?.approver} (standalone)`);
    } finally {
      ui.kill('SIGTERM');
    }
  });

  test("the signature checker agrees with Apple's codesign on the official darwin node binaries, and notices a changed byte", () => {
    for (const p of PLATFORMS.filter((x) => x.os === 'darwin')) {
      const official = readFileSync(nodeRuntime(p));
      expect(verifyCodeSignature(official)).toBeUndefined();
      const tampered = Buffer.from(official);
      tampered[0x5000] = (tampered[0x5000]! + 1) & 0xff;
      expect(verifyCodeSignature(tampered)).toBe('page 5 does not match its hash');
    }
  });

  test('the darwin executables are Mach-O for their CPU, carry the application and a valid ad-hoc signature', () => {
    for (const [name, cpu] of [
      ['darwin-amd64', CPU_TYPE_X86_64],
      ['darwin-arm64', CPU_TYPE_ARM64],
    ] as const) {
      const file = readFileSync(archiveOf(name).executable);
      const m = parseMachO(file);
      expect(m.cpuType).toBe(cpu);
      const sea = m.segments.find((s) => s.name === 'NODE_SEA');
      expect(sea?.sections.map((s) => s.name)).toEqual(['__NODE_SEA_BLOB']);
      // The blob holds the bundled script (its banner is the first line).
      const blob = file.subarray(sea!.sections[0]!.offset, sea!.sections[0]!.offset + sea!.sections[0]!.size);
      expect(blob.includes("import { createRequire as __createRequire } from 'node:module'")).toBe(true);
      expect(file.includes(SEA_FUSE_ON)).toBe(true);
      expect(verifyCodeSignature(file)).toBeUndefined();
      // The signature sits last in __LINKEDIT and the file ends with it.
      const linkedit = m.segments.find((s) => s.name === '__LINKEDIT')!;
      expect(m.codeSignature!.dataoff + m.codeSignature!.datasize).toBe(linkedit.fileoff + linkedit.filesize);
      expect(file.length).toBe(linkedit.fileoff + linkedit.filesize);
    }
  });

  test('the linux/arm64 executable is an aarch64 ELF carrying the application', () => {
    const file = readFileSync(archiveOf('linux-arm64').executable);
    expect(file.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(file.readUInt16LE(18)).toBe(183); // e_machine EM_AARCH64
    expect(file.includes(SEA_FUSE_ON)).toBe(true);
  });
});
