/**
 * Checks the Dockerfile's essentials without a Docker engine (none runs on the CI
 * machines): multi-stage, Node 24 everywhere, production dependencies only, a numeric
 * non-root user, an entry point that exists in the build output, a .dockerignore that
 * keeps secrets and bulk out of the context, and — the check an image build would only
 * reveal at run time — that the compiled controller imports nothing but Node built-ins
 * and production dependencies.
 *
 *   node dist/hack/image/lint-dockerfile.js    exit 1 and list the problems, if any
 */
import { builtinModules } from 'node:module';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');

export interface Instruction {
  line: number;
  op: string;
  args: string;
}

export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1).trimEnd() + ' ' + lines[++i]!.trim();
    }
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ line: start + 1, op: m[1]!.toUpperCase(), args: m[2]! });
  }
  return out;
}

/** Stages, with `${ARG}` in FROM lines resolved from the global ARG defaults. */
export function stages(instructions: Instruction[]): Stage[] {
  const args = new Map<string, string>();
  const result: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'ARG' && result.length === 0) {
      const [k, v] = ins.args.split('=');
      if (k && v !== undefined) args.set(k.trim(), v.trim());
    } else if (ins.op === 'FROM') {
      const [image = '', as, name] = ins.args.replace(/--platform=\S+\s+/, '').split(/\s+/);
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_, k: string) => args.get(k) ?? '');
      result.push({ image: resolved, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), instructions: [] });
    } else if (result.length > 0) {
      result[result.length - 1]!.instructions.push(ins);
    }
  }
  return result;
}

function isNode24(image: string): boolean {
  return /^(docker\.io\/(library\/)?)?node:24([.-]|$)/.test(image) || /^gcr\.io\/distroless\/nodejs24-/.test(image);
}

/** The package a bare import specifier names (`@scope/pkg/sub` → `@scope/pkg`). */
export function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

function walk(dir: string, keep: (f: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p, keep) : keep(p) ? [p] : [];
  });
}

/** Bare module specifiers imported (statically or dynamically) by a compiled ES module. */
export function importsOf(js: string): string[] {
  const specs = new Set<string>();
  for (const m of js.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g)) specs.add(m[1]!);
  for (const m of js.matchAll(/(?:^|[\s;])import\s*['"]([^'"]+)['"]/g)) specs.add(m[1]!);
  for (const m of js.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.add(m[1]!);
  return [...specs].filter((s) => !s.startsWith('.') && !s.startsWith('/'));
}

/**
 * What the image's production install would be missing: every package the compiled
 * controller and plugin (dist/src, tests excluded) import must be a Node built-in or
 * a `dependencies` entry of package.json.
 */
export function productionImportProblems(root = ROOT): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  const deps = new Set(Object.keys(pkg.dependencies ?? {}));
  const builtins = new Set(builtinModules);
  const files = walk(join(root, 'dist', 'src'), (f) => f.endsWith('.js') && !f.endsWith('.test.js'));
  if (files.length === 0) return ['dist/src has no compiled files: run `npm run build` first'];
  const problems: string[] = [];
  for (const file of files) {
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('node:') || builtins.has(spec)) continue;
      const name = packageName(spec);
      if (deps.has(name)) continue;
      const where = relative(root, file);
      problems.push(
        pkg.devDependencies?.[name]
          ? `${where} imports ${spec}, a devDependency: the production image (npm ci --omit=dev) would not have it`
          : `${where} imports ${spec}, which package.json does not list in dependencies`,
      );
    }
  }
  return problems;
}

/** Problems with the Dockerfile and .dockerignore at `root`; empty when all is well. */
export function lintDockerfile(root = ROOT): string[] {
  const problems: string[] = [];
  const path = join(root, 'Dockerfile');
  if (!existsSync(path)) return ['there is no Dockerfile'];
  const all = stages(parseDockerfile(readFileSync(path, 'utf8')));
  if (all.length < 2) problems.push(`the Dockerfile must be multi-stage (found ${all.length} FROM)`);
  for (const s of all) {
    if (!isNode24(s.image)) problems.push(`stage ${s.name ?? s.image} is not built on Node 24: FROM ${s.image}`);
    if (/:latest$/.test(s.image) || !/[:@]/.test(s.image)) problems.push(`FROM ${s.image} is not pinned to a tag or digest`);
  }
  const final = all[all.length - 1];
  if (final) {
    const users = final.instructions.filter((i) => i.op === 'USER');
    const user = users[users.length - 1]?.args.trim();
    const uid = user ? /^(\d+)(:\d+)?$/.exec(user)?.[1] : undefined;
    if (!user) problems.push('the final stage sets no USER (it would run as root)');
    else if (uid === undefined) problems.push(`USER ${user} is not numeric: Kubernetes cannot verify runAsNonRoot for a user name`);
    else if (Number(uid) === 0) problems.push('USER is root (0)');
    if (final.instructions.some((i) => i.op === 'RUN' && /\bnpm\s+(ci|install|i)\b/.test(i.args))) {
      problems.push('the final stage installs packages itself; copy production node_modules from a deps stage instead');
    }
    const copiesModules = final.instructions.filter((i) => i.op === 'COPY' && /--from=(\S+)/.test(i.args) && /node_modules/.test(i.args));
    if (copiesModules.length === 0) problems.push('the final stage copies no node_modules from an earlier stage');
    for (const c of copiesModules) {
      const from = /--from=(\S+)/.exec(c.args)![1]!;
      const source = all.find((s) => s.name === from);
      const installsProd = source?.instructions.some(
        (i) => i.op === 'RUN' && /\bnpm\s+ci\b/.test(i.args) && /--omit=dev|--production|--only=prod/.test(i.args),
      );
      if (!installsProd) problems.push(`node_modules copied from stage ${from}, which does not run npm ci --omit=dev`);
    }
    const cmd = [...final.instructions].reverse().find((i) => i.op === 'CMD' || i.op === 'ENTRYPOINT');
    const entry = cmd ? /(dist\/\S+?\.js)/.exec(cmd.args)?.[1] : undefined;
    if (!entry) problems.push('the final stage has no CMD or ENTRYPOINT running a dist/...js file');
    else if (!existsSync(join(root, entry))) problems.push(`CMD runs ${entry}, which \`npm run build\` does not produce`);
    if (cmd && !cmd.args.trim().startsWith('[')) problems.push(`${cmd.op} should use the exec (JSON array) form so signals reach node`);
  }
  for (const s of all) {
    for (const i of s.instructions) {
      if (i.op === 'ADD' && /https?:\/\//.test(i.args))
        problems.push(`line ${i.line}: ADD of a URL; download in a RUN step with a checksum instead`);
      if (i.op === 'RUN' && /\bsudo\b/.test(i.args)) problems.push(`line ${i.line}: sudo in a RUN step`);
      if (i.op === 'COPY' && !/--from=/.test(i.args)) {
        const sources = i.args
          .split(/\s+/)
          .filter((a) => !a.startsWith('--'))
          .slice(0, -1);
        for (const src of sources)
          if (!existsSync(join(root, src))) problems.push(`line ${i.line}: COPY ${src}: no such file in the repository`);
      }
      if ((i.op === 'ENV' || i.op === 'ARG') && /(SECRET|TOKEN|PASSWORD|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)\s*=/.test(i.args)) {
        problems.push(`line ${i.line}: a credential baked into the image (${i.op} ${i.args})`);
      }
    }
  }
  const ignorePath = join(root, '.dockerignore');
  if (!existsSync(ignorePath)) {
    problems.push('there is no .dockerignore: node_modules, .git and .testbed would be sent to the build');
  } else {
    const rules = readFileSync(ignorePath, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const denyAll = rules.includes('**') || rules.includes('*');
    for (const p of ['node_modules', '.git', '.testbed', 'dist']) {
      const excluded = denyAll
        ? !rules.some((r) => r === `!${p}` || r.startsWith(`!${p}/`))
        : rules.some((r) => r.replace(/^\/|\/$/g, '') === p);
      if (!excluded) problems.push(`.dockerignore does not exclude ${p}`);
    }
  }
  return problems;
}

function main(): void {
  const problems = [...lintDockerfile(), ...productionImportProblems()];
  if (problems.length > 0) {
    console.error(`Dockerfile problems:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log('Dockerfile: multi-stage, Node 24, production dependencies only, numeric non-root user, entry point present: ok');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
