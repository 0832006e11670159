/**
 * Renders the Helm chart with `helm template`: the one way the repository turns
 * charts/remediator into manifests, shared by `hack/chart/gen-config.ts` (which
 * derives config/ from it) and the install tests (which apply it to a real API server).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHART_DIR = join(ROOT, 'charts', 'remediator');

export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface RenderOptions {
  helm: string;
  release: string;
  namespace: string;
  /** Values, written to a temporary values file (JSON is YAML). */
  values?: Record<string, unknown>;
  valuesFiles?: string[];
  includeCrds?: boolean;
  extraArgs?: string[];
}

const run = promisify(execFile);

/** Helm with its state in a throwaway directory: rendering must not read or write ~/.config/helm. */
export async function helm(
  helmPath: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ stdout: string; stderr: string }> {
  const state = mkdtempSync(join(tmpdir(), 'remediator-helm-'));
  try {
    return await run(helmPath, args, {
      maxBuffer: 32 * 1024 * 1024,
      env: { ...env, HELM_CACHE_HOME: join(state, 'cache'), HELM_CONFIG_HOME: join(state, 'config'), HELM_DATA_HOME: join(state, 'data') },
    });
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

/** `helm template`; rejects with helm's stderr when rendering fails (a schema violation, say). */
export async function renderChart(opts: RenderOptions): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'remediator-values-'));
  try {
    const args = ['template', opts.release, CHART_DIR, '--namespace', opts.namespace];
    if (opts.includeCrds) args.push('--include-crds');
    for (const f of opts.valuesFiles ?? []) args.push('--values', f);
    if (opts.values) {
      const file = join(dir, 'values.json');
      writeFileSync(file, JSON.stringify(opts.values));
      args.push('--values', file);
    }
    args.push(...(opts.extraArgs ?? []));
    try {
      return (await helm(opts.helm, args)).stdout;
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`helm template failed: ${e.stderr?.trim() || e.message}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The API objects in a multi-document YAML stream (empty documents skipped). */
export function parseManifests(text: string): ManifestObject[] {
  const objects: ManifestObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML from helm: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as ManifestObject | null;
    if (obj && typeof obj === 'object' && obj.kind) objects.push(obj);
  }
  return objects;
}

/** helm: $HELM, else the test bed's pinned helm (hack/testbed/build.sh; cached after the first run). */
export async function findHelm(): Promise<string> {
  if (process.env['HELM']) return process.env['HELM'];
  const { ensureTestbedBinaries } = await import('../../test/testbed/binaries.js');
  return (await ensureTestbedBinaries()).helm;
}
