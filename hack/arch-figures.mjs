#!/usr/bin/env node
/**
 * Prints the figures the architecture work is judged by, for a checkout (default: this
 * one): the longest and most complex functions of src/ (Biome's own measures, the ones
 * biome.json's ceilings apply), the worst of each lint scope, the files over 350 lines,
 * the places that declare watches, the reasons in the catalogue, and Biome's verdict
 * with the repository's configuration. Run before and after a change to compare:
 *
 *   node_modules/.bin/node hack/arch-figures.mjs [checkout]
 *
 * It reads files and runs Biome's linter; it changes nothing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = resolve(process.argv[2] ?? here);
const biome = join(here, 'node_modules', '.bin', 'biome');

/** Every function over a low bar, as Biome measures it: complexity and length (blank lines skipped). */
function measured(dirs) {
  const config = mkdtempSync(join(tmpdir(), 'arch-figures-'));
  writeFileSync(
    join(config, 'biome.json'),
    JSON.stringify({
      linter: {
        enabled: true,
        rules: {
          recommended: false,
          complexity: {
            noExcessiveCognitiveComplexity: { level: 'error', options: { maxAllowedComplexity: 15 } },
            noExcessiveLinesPerFunction: { level: 'error', options: { maxLines: 50, skipBlankLines: true } },
          },
        },
      },
    }),
  );
  const out = spawnSync(biome, ['lint', '--config-path', config, '--reporter=json', '--max-diagnostics=none', ...dirs], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  rmSync(config, { recursive: true, force: true });
  const found = JSON.parse(out.stdout).diagnostics.map((d) => {
    const value = Number(/\((\d+)\)|complexity of (\d+)/.exec(d.message)?.slice(1).find(Boolean));
    const line = readFileSync(join(root, d.location.path), 'utf8').split('\n')[d.location.start.line - 1] ?? '';
    const name = /(?:function\s+|async\s+|^\s*(?:private\s+|public\s+)?(?:static\s+)?)([A-Za-z_$][\w$]*)\s*[(<]/.exec(line)?.[1];
    const kind = d.category.endsWith('CognitiveComplexity') ? 'complexity' : 'lines';
    return { kind, value, at: `${d.location.path}:${d.location.start.line}`, name: name ?? line.trim().slice(0, 40) };
  });
  return found;
}

const scope = (path) =>
  path.startsWith('test/') ? 'test/' : path.startsWith('hack/') ? 'hack' : /\.test\.ts:/.test(path) ? 'src tests' : 'src';

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sources(path);
    return d.name.endsWith('.ts') ? [path] : [];
  });
}

const all = measured(['src', 'test', 'hack']);
let commit = 'not a git checkout';
try {
  commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
} catch {}
console.log(`# Architecture figures for ${root} (${commit})\n`);
for (const kind of ['complexity', 'lines']) {
  console.log(`## Top src/ functions by ${kind === 'lines' ? 'length (lines, blanks skipped)' : 'cognitive complexity'}`);
  for (const f of all
    .filter((f) => f.kind === kind && scope(f.at) === 'src')
    .sort((a, b) => b.value - a.value)
    .slice(0, 12))
    console.log(`  ${String(f.value).padStart(4)}  ${f.name}  (${f.at})`);
  console.log('');
}
console.log('## Worst per lint scope (what biome.json ceilings must be at least)');
for (const s of ['src', 'src tests', 'test/', 'hack']) {
  const worst = (kind) => {
    const top = all.filter((f) => f.kind === kind && scope(f.at) === s).sort((a, b) => b.value - a.value)[0];
    return top ? `${top.value} (${top.name}, ${top.at})` : '0';
  };
  console.log(`  ${s.padEnd(10)} complexity ${worst('complexity')}; lines ${worst('lines')}`);
}

console.log('\n## src/ files over 350 lines');
const big = sources(join(root, 'src'))
  .map((f) => ({ f: relative(root, f), n: readFileSync(f, 'utf8').split('\n').length - 1 }))
  .filter((x) => x.n > 350)
  .sort((a, b) => b.n - a.n);
for (const x of big) console.log(`  ${String(x.n).padStart(5)}  ${x.f}`);
console.log(
  `  (${big.filter((x) => !x.f.endsWith('.test.ts')).length} product files, ${big.filter((x) => x.f.endsWith('.test.ts')).length} tests)`,
);

const watchFiles = sources(join(root, 'src'))
  .filter((f) => !f.endsWith('.test.ts'))
  .map((f) => ({ f: relative(root, f), n: (readFileSync(f, 'utf8').match(/\.watches\(/g) ?? []).length }))
  .filter((x) => x.n > 0);
console.log(`\n## Places that declare watches: ${watchFiles.length} file(s), ${watchFiles.reduce((s, x) => s + x.n, 0)} .watches() calls`);
for (const x of watchFiles) console.log(`  ${x.n}  ${x.f}`);

const catalogue = join(root, 'src', 'api', 'v1alpha1', 'reasons.ts');
let reasons = 'no catalogue';
try {
  reasons = String((readFileSync(catalogue, 'utf8').match(/^ {2}[A-Za-z]+: \{$/gm) ?? []).length);
} catch {}
console.log(`\n## Reasons in the catalogue: ${reasons}`);

const lint = spawnSync(biome, ['check', '--max-diagnostics=0', 'src', 'test', 'hack'], { cwd: root, encoding: 'utf8' });
const summary = `${lint.stdout}${lint.stderr}`.match(/Checked .*|Found \d+ errors?\.?|Found \d+ warnings?\.?/g) ?? [];
console.log(`\n## Biome with the checkout's biome.json: ${lint.status === 0 ? 'passes' : 'FAILS'} (${summary.join('; ')})`);
