/**
 * Builds the kubectl plugin as one standalone executable per platform (linux and darwin,
 * amd64 and arm64), so an approver installs one file and needs no Node.js, no npm and no
 * clone of this repository: `make plugin`.
 *
 * 1. esbuild bundles the compiled entry (dist/src/cli/kubectl-remediator.js) and every
 *    dependency into one ESM file, dist/plugin/kubectl-remediator.mjs.
 * 2. For each platform, Node's single executable application support (`node
 *    --build-sea`, run by the pinned runtime of the build machine) writes that file into
 *    a copy of the platform's official node binary (hack/plugin/runtimes.ts); the darwin
 *    ones get an ad-hoc code signature (hack/plugin/macho.ts), without which macOS on
 *    Apple silicon refuses to start them.
 * 3. Each executable goes into a reproducible tar.gz with the licences, and the krew
 *    manifest (plugins/remediator.yaml) gets one platform entry per archive, with its
 *    URI and sha256.
 *
 * Output: dist/plugin/<os>-<arch>/kubectl-remediator, dist/plugin/*.tar.gz,
 * dist/plugin/remediator.yaml. `npm run build` first. PLUGIN_PLATFORMS=linux-amd64,...
 * builds a subset; PLUGIN_RELEASE_URL sets where the manifest says archives live.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { parseDocument } from 'yaml';
import { adHocSign } from './macho.js';
import { hostPlatform, NODE_RUNTIME_VERSION, nodeRuntime, PLATFORMS, platformName, type Platform } from './runtimes.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const out = join(root, 'dist', 'plugin');

/** Where release archives will be downloaded from; the krew manifest points there. */
const RELEASE_URL = process.env['PLUGIN_RELEASE_URL'] ?? 'https://github.com/remediator-dev/remediator/releases/download/v${VERSION}';

export interface PlatformBuild {
  platform: Platform;
  executable: string;
  archive: string;
  sha256: string;
  uri: string;
}

export interface PluginBuild {
  version: string;
  /** The JavaScript every executable carries. */
  script: string;
  platforms: PlatformBuild[];
  manifest: string;
}

/** Bundles the plugin into one ESM file that needs nothing but Node's built-in modules. */
async function bundleScript(version: string): Promise<string> {
  const script = join(out, 'kubectl-remediator.mjs');
  await build({
    entryPoints: [join(root, 'dist', 'src', 'cli', 'kubectl-remediator.js')],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    legalComments: 'none',
    define: { __REMEDIATOR_VERSION__: JSON.stringify(version) },
    // Some dependencies are CommonJS and require() Node built-ins; an ESM bundle has no
    // `require` unless we make one (inside the executable it loads built-ins only).
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  return script;
}

/** `node --build-sea` for one platform: the build machine's runtime writes into the target's. */
function buildExecutable(script: string, platform: Platform, host: string): string {
  const dir = join(out, platformName(platform));
  mkdirSync(dir, { recursive: true });
  const executable = join(dir, 'kubectl-remediator');
  const config = join(dir, 'sea-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      main: script,
      mainFormat: 'module',
      executable: nodeRuntime(platform),
      output: executable,
      disableExperimentalSEAWarning: true,
      // Both are specific to the CPU and V8 build that writes them: off, since one
      // machine writes every platform's executable.
      useSnapshot: false,
      useCodeCache: false,
    }),
  );
  execFileSync(host, ['--build-sea', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(config);
  if (platform.os === 'darwin') writeFileSync(executable, adHocSign(readFileSync(executable), 'kubectl-remediator'));
  chmodSync(executable, 0o755);
  copyFileSync(join(root, 'LICENSE'), join(dir, 'LICENSE'));
  // The executable is Node.js too: its licence (and its dependencies') travels along.
  copyFileSync(join(dirname(nodeRuntime(platform)), 'LICENSE'), join(dir, 'LICENSE.node'));
  return executable;
}

/** A reproducible archive: fixed order, times and owners, and gzip without a name or time stamp. */
function archive(dir: string, file: string): string {
  const tarball = file.replace(/\.gz$/, '');
  execFileSync('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-cf',
    tarball,
    '-C',
    dir,
    'kubectl-remediator',
    'LICENSE',
    'LICENSE.node',
  ]);
  execFileSync('gzip', ['-n', '-f', tarball]);
  return file;
}

function selectedPlatforms(): readonly Platform[] {
  const wanted = process.env['PLUGIN_PLATFORMS']?.split(',').map((s) => s.trim());
  if (!wanted) return PLATFORMS;
  const unknown = wanted.filter((w) => !PLATFORMS.some((p) => platformName(p) === w));
  if (unknown.length > 0)
    throw new Error(`PLUGIN_PLATFORMS: unknown ${unknown.join(', ')} (known: ${PLATFORMS.map(platformName).join(', ')})`);
  return PLATFORMS.filter((p) => wanted.includes(platformName(p)));
}

export async function bundlePlugin(platforms = selectedPlatforms()): Promise<PluginBuild> {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const host = hostPlatform();
  if (!host)
    throw new Error(`the plugin is built on ${PLATFORMS.map(platformName).join(', ')} only, not ${process.platform}-${process.arch}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const script = await bundleScript(version);
  const hostNode = nodeRuntime(host);
  const base = RELEASE_URL.replaceAll('${VERSION}', version);
  const built: PlatformBuild[] = [];
  for (const platform of platforms) {
    const executable = buildExecutable(script, platform, hostNode);
    const name = `kubectl-remediator-v${version}-${platformName(platform)}.tar.gz`;
    const file = archive(dirname(executable), join(out, name));
    const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
    built.push({ platform, executable, archive: file, sha256, uri: `${base}/${name}` });
  }
  const manifest = join(out, 'remediator.yaml');
  writeFileSync(manifest, renderKrewManifest(readFileSync(join(root, 'plugins', 'remediator.yaml'), 'utf8'), version, built));
  return { version, script, platforms: built, manifest };
}

/**
 * Fills the krew manifest template: `${VERSION}` and `${NODE_VERSION}` in its text, and
 * one `spec.platforms` entry per archive (the template's comments stay).
 */
export function renderKrewManifest(
  template: string,
  version: string,
  built: readonly Omit<PlatformBuild, 'executable' | 'archive'>[],
): string {
  const text = template.replaceAll('${VERSION}', version).replaceAll('${NODE_VERSION}', NODE_RUNTIME_VERSION);
  const left = /\$\{[A-Z0-9_]+\}/.exec(text);
  if (left) throw new Error(`plugins/remediator.yaml: ${left[0]} is not filled in`);
  const doc = parseDocument(text);
  doc.setIn(
    ['spec', 'platforms'],
    built.map((b) => ({
      selector: { matchLabels: { os: b.platform.os, arch: b.platform.arch } },
      uri: b.uri,
      sha256: b.sha256,
      files: [
        { from: 'kubectl-remediator', to: '.' },
        { from: 'LICENSE', to: '.' },
        { from: 'LICENSE.node', to: '.' },
      ],
      bin: 'kubectl-remediator',
    })),
  );
  return doc.toString();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  const b = await bundlePlugin();
  for (const p of b.platforms) console.log(`${p.archive} sha256:${p.sha256}`);
  if (!process.env['PLUGIN_RELEASE_URL'])
    console.log(
      `note: the manifest's URIs (${b.platforms[0]?.uri ?? RELEASE_URL}, ...) do not exist until the archives are published there; install with --archive, or set PLUGIN_RELEASE_URL to where you publish them`,
    );
  console.log(`${b.manifest}\n(${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
