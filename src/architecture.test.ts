/**
 * Holds the code to ARCHITECTURE.md, the one place its rules are written: the import
 * rules (a folder imports only the folders its row names, `@aws-sdk/*` stays in
 * src/cloud; tests may import anything), and the map of what triggers what (each
 * controller's watches, as its setup file declares them). The tables are read from the
 * file, so the document and the code cannot drift apart.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const FOLDERS = readdirSync(SRC, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sources(path);
    return d.name.endsWith('.ts') && !d.name.endsWith('.test.ts') ? [path] : [];
  });
}

interface Import {
  file: string;
  specifier: string;
  typeOnly: boolean;
}

function imports(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^(?:import|export)\s+(type\s+)?([^;]*?)\s+from\s+'([^']+)'/gms)].map((m) => ({
    file,
    specifier: m[3]!,
    // `import type {..}`, or every name in the braces marked `type`.
    typeOnly:
      m[1] !== undefined ||
      (/^\{[^}]*\}$/.test(m[2]!.trim()) &&
        m[2]!
          .slice(1, -1)
          .split(',')
          .every((n) => n.trim() === '' || n.trim().startsWith('type '))),
  }));
}

/** The src/ folder a relative import lands in, or undefined for a package or a top-level file. */
function folderOf(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const target = relative(SRC, resolve(dirname(file), specifier)).split(sep);
  return target.length > 1 ? target[0] : undefined;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAP = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');

/** The rows of the table between `<!-- name: ... -->` and `<!-- end of name -->` in ARCHITECTURE.md, as cells. */
function table(name: string): string[][] {
  const m = new RegExp(`<!-- ${name}: [^>]*-->\\n([\\s\\S]*?)<!-- end of ${name} -->`).exec(MAP);
  if (!m) throw new Error(`ARCHITECTURE.md has no "${name}" table between its markers`);
  return m[1]!
    .trim()
    .split('\n')
    .slice(2) // the header and its |---| line
    .map((row) =>
      row
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
}

interface Rule {
  allowed: Map<string, 'all' | 'types'>;
}

/** The "may import" cell of each folder's row: `a, b (types only)` or `nothing in src/`. */
const RULES: Map<string, Rule> = new Map(
  table('import rules').map(([folder, , may]) => {
    const name = folder!.replace(/`/g, '');
    const allowed = new Map<string, 'all' | 'types'>();
    if (may !== 'nothing in src/') {
      for (const part of may!.split(',')) {
        const m = /^\s*([a-z0-9]+)( \(types only\))?\s*$/.exec(part);
        if (!m) throw new Error(`ARCHITECTURE.md, row ${name}: cannot read "${part.trim()}" in "${may}"`);
        allowed.set(m[1]!, m[2] ? 'types' : 'all');
      }
    }
    return [name, { allowed }];
  }),
);

function ruleOf(folder: string): Rule {
  const rule = RULES.get(folder);
  if (!rule) throw new Error(`src/${folder} has no row in ARCHITECTURE.md's import rules: add one`);
  return rule;
}

describe('the folders of src/ import only what ARCHITECTURE.md says', () => {
  test.each(FOLDERS)('src/%s', (folder) => {
    const rule = ruleOf(folder);
    const broken: string[] = [];
    for (const file of sources(join(SRC, folder))) {
      for (const i of imports(file)) {
        const where = `${relative(SRC, file)} imports ${i.specifier}`;
        if (i.specifier.startsWith('@aws-sdk/') && folder !== 'cloud') broken.push(`${where}: only src/cloud talks to AWS`);
        const target = folderOf(file, i.specifier);
        if (target === undefined || target === folder) continue;
        const allowed = rule.allowed.get(target);
        if (allowed === undefined) broken.push(`${where}: ARCHITECTURE.md does not allow ${target}`);
        else if (allowed === 'types' && !i.typeOnly) broken.push(`${where}: ${target} is allowed for types only`);
      }
    }
    expect(broken).toEqual([]);
  });

  test('the rules are written only in ARCHITECTURE.md, not again atop a file', () => {
    expect(
      sources(SRC)
        .filter((f) => /^ \* May import: /m.test(readFileSync(f, 'utf8')))
        .map((f) => relative(SRC, f)),
    ).toEqual([]);
  });

  test('every rule is for a folder that exists, and names folders that exist and that the folder uses', () => {
    expect([...RULES.keys()].filter((f) => !FOLDERS.includes(f))).toEqual([]);
    for (const [folder, rule] of RULES)
      expect({ folder, unknown: [...rule.allowed.keys()].filter((f) => !FOLDERS.includes(f)) }).toEqual({ folder, unknown: [] });
    for (const folder of FOLDERS) {
      const rule = ruleOf(folder);
      const used = new Set(sources(join(SRC, folder)).flatMap((f) => imports(f).map((i) => folderOf(f, i.specifier))));
      expect({ folder, unused: [...rule.allowed.keys()].filter((f) => !used.has(f)) }).toEqual({ folder, unused: [] });
    }
  });
});

describe('what triggers what: ARCHITECTURE.md lists every watch each controller declares', () => {
  /** controller → setup file and watched caches, as the document says. */
  const documented = new Map<string, { setup: string; caches: Set<string> }>();
  let current: { setup: string; caches: Set<string> } | undefined;
  for (const [controller, setup, cache] of table('watches')) {
    if (controller) {
      current = { setup: setup!.replace(/`/g, ''), caches: new Set() };
      documented.set(controller.replace(/`/g, ''), current);
    }
    current?.caches.add(cache!);
  }

  /** What the code declares: `.controller({ name: 'x', ... })` and each `.watches(mgr.caches.y, ...)` after it. */
  function declared(file: string): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    let caches: Set<string> | undefined;
    for (const m of readFileSync(file, 'utf8').matchAll(/\.controller\(\{\s*name: '([^']+)'|\.watches\(\s*([^,]+),/g)) {
      if (m[1]) {
        caches = new Set();
        out.set(m[1], caches);
      } else caches?.add(m[2]!.trim().replace(/^mgr\.caches\./, ''));
    }
    return out;
  }

  test.each([...documented.keys()])('%s', (controller) => {
    const doc = documented.get(controller)!;
    const code = declared(join(ROOT, doc.setup)).get(controller);
    expect({ controller, setup: doc.setup, watches: [...(code ?? [])].sort() }).toEqual({
      controller,
      setup: doc.setup,
      watches: [...doc.caches].sort(),
    });
  });

  test('no controller or watch is declared anywhere else', () => {
    const setups = new Set([...documented.values()].map((d) => join(ROOT, d.setup)));
    const elsewhere = sources(SRC)
      .filter((f) => !setups.has(f) && !f.endsWith(`${sep}runtime${sep}manager.ts`))
      .filter((f) => /\.watches\(|\.controller\(\{/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f));
    expect(elsewhere).toEqual([]);
  });
});
