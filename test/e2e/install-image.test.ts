/**
 * The Dockerfile, without a Docker engine (none runs on these machines): its
 * essentials are linted (multi-stage, Node 24, production dependencies only, numeric
 * non-root user, an entry point the build produces, a tight .dockerignore), and the
 * compiled controller is checked to import only what a production install provides.
 * The linter is tested too, on Dockerfiles that break each rule.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importsOf, lintDockerfile, packageName, productionImportProblems } from '../../hack/image/lint-dockerfile.js';

describe('Dockerfile', () => {
  test("the repository's Dockerfile and .dockerignore pass the lint", () => {
    expect(lintDockerfile()).toEqual([]);
  });

  test('the compiled controller and plugin import only Node built-ins and production dependencies', () => {
    expect(productionImportProblems()).toEqual([]);
  });

  describe('the lint catches', () => {
    let dir: string;
    const good = [
      'ARG NODE_IMAGE=node:24-bookworm-slim',
      'FROM ${NODE_IMAGE} AS deps',
      'RUN npm ci --omit=dev',
      'FROM gcr.io/distroless/nodejs24-debian12:nonroot',
      'COPY --from=deps /app/node_modules ./node_modules',
      'USER 65532:65532',
      'CMD ["dist/src/main.js"]',
    ];
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'dockerfile-lint-'));
      mkdirSync(join(dir, 'dist', 'src'), { recursive: true });
      writeFileSync(join(dir, 'dist', 'src', 'main.js'), '');
      writeFileSync(join(dir, '.dockerignore'), '**\n!src/**\n');
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const lint = (lines: string[]) => {
      writeFileSync(join(dir, 'Dockerfile'), lines.join('\n'));
      return lintDockerfile(dir);
    };

    test('nothing in a minimal good one', () => expect(lint(good)).toEqual([]));
    test('a single stage', () => expect(lint(good.slice(3))).toEqual(expect.arrayContaining([expect.stringContaining('multi-stage')])));
    test('another Node version', () =>
      expect(lint(good.map((l) => l.replace('node:24', 'node:20')))).toEqual([expect.stringContaining('not built on Node 24')]));
    test('no USER', () => expect(lint(good.filter((l) => !l.startsWith('USER')))).toEqual([expect.stringContaining('sets no USER')]));
    test('a user name instead of a number', () =>
      expect(lint(good.map((l) => (l.startsWith('USER') ? 'USER node' : l)))).toEqual([expect.stringContaining('not numeric')]));
    test('root', () => expect(lint(good.map((l) => (l.startsWith('USER') ? 'USER 0' : l)))).toEqual(['USER is root (0)']));
    test('dev dependencies', () =>
      expect(lint(good.map((l) => l.replace(' --omit=dev', '')))).toEqual([expect.stringContaining('does not run npm ci --omit=dev')]));
    test('an entry point the build does not produce', () =>
      expect(lint(good.map((l) => l.replace('main.js', 'server.js')))).toEqual([expect.stringContaining('does not produce')]));
    test('a shell-form CMD', () =>
      expect(lint(good.map((l) => (l.startsWith('CMD') ? 'CMD node dist/src/main.js' : l)))).toEqual([
        expect.stringContaining('exec (JSON array) form'),
      ]));
    test('a baked-in credential', () =>
      expect(lint([...good, 'ENV AWS_SECRET_ACCESS_KEY=abc'])).toEqual([expect.stringContaining('credential baked into the image')]));
    test('a .dockerignore that lets node_modules in', () => {
      writeFileSync(join(dir, '.dockerignore'), '.git\n.testbed\ndist\n');
      expect(lint(good)).toEqual(['.dockerignore does not exclude node_modules']);
    });
  });

  test('import scanning sees static, side-effect and dynamic imports, scoped packages and subpaths', () => {
    expect(
      importsOf(
        `import a from 'x';\nimport 'y/z';\nexport { b } from "@s/p/q";\nconst c = await import('w');\nimport d from './local.js';`,
      ).sort(),
    ).toEqual(['@s/p/q', 'w', 'x', 'y/z']);
    expect(packageName('@s/p/q')).toBe('@s/p');
    expect(packageName('y/z')).toBe('y');
  });
});
