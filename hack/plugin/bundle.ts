/**
 * Builds the kubectl plugin as one JavaScript file with every dependency inside
 * (esbuild), so users install a single executable instead of cloning the repository and
 * running `npm ci`: dist/plugin/kubectl-remediator, plus a krew archive and the krew
 * manifest rendered from plugins/remediator.yaml. It needs only Node.js ≥ 22.19 on the
 * user's machine (@kubernetes/client-node 2.x does not load on older Node; the entry
 * point says so instead of crashing).
 *
 * Input is the compiled entry (dist/src/cli/kubectl-remediator.js): `npm run build` first.
 * The version comes from package.json and is written into the bundle.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const out = join(root, 'dist', 'plugin');

/** Where release archives will be downloaded from; the krew manifest points there. */
const RELEASE_URL = process.env['PLUGIN_RELEASE_URL'] ?? 'https://github.com/remediator-dev/remediator/releases/download/v${VERSION}';

export interface PluginBuild {
  version: string;
  executable: string;
  archive: string;
  sha256: string;
  manifest: string;
}

export async function bundlePlugin(): Promise<PluginBuild> {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const executable = join(out, 'kubectl-remediator');
  await build({
    entryPoints: [join(root, 'dist', 'src', 'cli', 'kubectl-remediator.js')],
    outfile: executable,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    legalComments: 'none',
    define: { __REMEDIATOR_VERSION__: JSON.stringify(version) },
    // Some dependencies are CommonJS and require() Node built-ins; an ESM bundle has no
    // `require` unless we make one.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  chmodSync(executable, 0o755);

  // krew unpacks the archive and links `bin`; one archive serves every OS, since the
  // file is JavaScript (Node is the platform dependency, stated in the manifest).
  const archive = join(out, `kubectl-remediator-v${version}.tar.gz`);
  writeFileSync(join(out, 'LICENSE'), readFileSync(join(root, 'LICENSE')));
  // Reproducible: fixed order, times and owners, and gzip without a name or time stamp.
  const tarball = archive.replace(/\.gz$/, '');
  execFileSync('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-cf',
    tarball,
    '-C',
    out,
    'kubectl-remediator',
    'LICENSE',
  ]);
  execFileSync('gzip', ['-n', '-f', tarball]);
  const sha256 = createHash('sha256').update(readFileSync(archive)).digest('hex');

  const uri = RELEASE_URL.replaceAll('${VERSION}', version) + `/kubectl-remediator-v${version}.tar.gz`;
  const manifest = join(out, 'remediator.yaml');
  writeFileSync(manifest, renderKrewManifest(readFileSync(join(root, 'plugins', 'remediator.yaml'), 'utf8'), { version, uri, sha256 }));
  return { version, executable, archive, sha256, manifest };
}

/** Fills the krew manifest template's `${VERSION}`, `${URI}` and `${SHA256}`; refuses to leave one unfilled. */
export function renderKrewManifest(template: string, v: { version: string; uri: string; sha256: string }): string {
  const text = template.replaceAll('${VERSION}', v.version).replaceAll('${URI}', v.uri).replaceAll('${SHA256}', v.sha256);
  const left = /\$\{[A-Z0-9_]+\}/.exec(text);
  if (left) throw new Error(`plugins/remediator.yaml: ${left[0]} is not filled in`);
  return text;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const b = await bundlePlugin();
  console.log(`${b.executable}\n${b.archive} sha256:${b.sha256}\n${b.manifest}`);
}
