/**
 * Each folder of src/ says in its opening file which other folders it may import, in one
 * line `May import: a, b (types only), ...` (or `nothing in src/`); this test holds the
 * code to those lines, and keeps `@aws-sdk/*` inside src/cloud. Tests may import anything.
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

interface Rule {
  file: string;
  allowed: Map<string, 'all' | 'types'>;
}

function ruleOf(folder: string): Rule {
  const declaring = sources(join(SRC, folder)).filter((f) => /^ \* May import: /m.test(readFileSync(f, 'utf8')));
  if (declaring.length !== 1)
    throw new Error(`src/${folder}: ${declaring.length} files declare "May import:"; want exactly one, its opening file`);
  const file = declaring[0]!;
  const line = /^ \* May import: (.*)$/m.exec(readFileSync(file, 'utf8'))![1]!;
  const allowed = new Map<string, 'all' | 'types'>();
  if (!line.startsWith('nothing in src/')) {
    for (const part of line.replace(/\.$/, '').split(',')) {
      const m = /^\s*([a-z0-9/]+)( \(types only\))?\s*$/.exec(part);
      if (!m || !FOLDERS.includes(m[1]!)) throw new Error(`${relative(SRC, file)}: cannot read "${part.trim()}" in "May import: ${line}"`);
      allowed.set(m[1]!, m[2] ? 'types' : 'all');
    }
  }
  return { file, allowed };
}

describe('the folders of src/ import only what their opening file says', () => {
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
        if (allowed === undefined) broken.push(`${where}: ${relative(SRC, rule.file)} does not allow ${target}`);
        else if (allowed === 'types' && !i.typeOnly) broken.push(`${where}: ${target} is allowed for types only`);
      }
    }
    expect(broken).toEqual([]);
  });

  test('every rule names folders that exist and that the folder uses', () => {
    for (const folder of FOLDERS) {
      const rule = ruleOf(folder);
      const used = new Set(sources(join(SRC, folder)).flatMap((f) => imports(f).map((i) => folderOf(f, i.specifier))));
      expect({ folder, unused: [...rule.allowed.keys()].filter((f) => !used.has(f)) }).toEqual({ folder, unused: [] });
    }
  });
});
