/**
 * `make plugin`'s output works without the repository: the archive unpacked in an empty
 * directory runs with only Node on PATH, reports package.json's version, and talks to
 * the real API server; the krew manifest is filled in and points at that archive.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { bundlePlugin, renderKrewManifest, type PluginBuild } from '../../hack/plugin/bundle.js';
import { repoRoot } from '../testbed/binaries.js';
import { run } from '../testbed/tools.js';
import { Resources, testbedFromEnv } from './harness.js';

const tb = testbedFromEnv();

describe('the bundled kubectl plugin', () => {
  let built: PluginBuild;
  let dir = '';
  const version = (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  // Only Node (this test's own, 24) and the system's basics: no node_modules, no repository.
  const env = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: tmpdir(), KUBECONFIG: tb.cluster.adminKubeconfig };

  beforeAll(async () => {
    built = await bundlePlugin();
    dir = mkdtempSync(join(tmpdir(), 'kubectl-remediator-'));
    execFileSync('tar', ['-xzf', built.archive, '-C', dir]);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('runs from the unpacked archive alone', async () => {
    const v = await run(join(dir, 'kubectl-remediator'), ['--version'], { env, cwd: dir });
    expect(v.stdout.trim()).toBe(`kubectl-remediator ${version} (remediator.dev/v1alpha1)`);

    await new Resources(tb.admin()).namespace('plugin-bundle');
    const list = await run(join(dir, 'kubectl-remediator'), ['list', '-n', 'plugin-bundle'], { env, cwd: dir });
    // kubectl's wording for an empty list, on stderr: it reached the API server and listed.
    expect(list).toMatchObject({ code: 0, stdout: '', stderr: 'No remediation requests found in plugin-bundle namespace.\n' });
  });

  test("the krew manifest names this version and the archive's checksum", () => {
    const manifest = parse(readFileSync(built.manifest, 'utf8')) as {
      spec: { version: string; platforms: Array<{ sha256: string; uri: string; bin: string }> };
    };
    expect(manifest.spec.version).toBe(`v${version}`);
    expect(manifest.spec.platforms[0]).toMatchObject({
      sha256: createHash('sha256').update(readFileSync(built.archive)).digest('hex'),
      uri: expect.stringMatching(new RegExp(`/kubectl-remediator-v${version.replaceAll('.', '\\.')}\\.tar\\.gz$`)),
      bin: 'kubectl-remediator',
    });
    expect(() => renderKrewManifest('uri: ${URI}\nx: ${OTHER}', { version, uri: 'u', sha256: 's' })).toThrow('${OTHER}');
  });
});
