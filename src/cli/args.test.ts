import { readFileSync } from 'node:fs';
import { PLUGIN_VERSION, parseCommand, UsageError } from './args.js';

describe('kubectl remediator argument parsing', () => {
  test("list takes kubectl's namespace flags, a phase filter and output formats", () => {
    expect(parseCommand(['list'])).toEqual({
      kind: 'list',
      conn: { namespace: undefined, context: undefined, kubeconfig: undefined },
      allNamespaces: false,
      output: 'table',
      phase: undefined,
    });
    expect(parseCommand(['ls', '-A', '-o', 'wide'])).toMatchObject({ kind: 'list', allNamespaces: true, output: 'wide' });
    expect(parseCommand(['get', '-n', 'prod', '--phase', 'AwaitingApproval', '--context', 'eks'])).toMatchObject({
      kind: 'list',
      conn: { namespace: 'prod', context: 'eks' },
      phase: 'AwaitingApproval',
    });
    expect(() => parseCommand(['list', '-o', 'yaml'])).toThrow('--output must be wide, name or json');
    expect(() => parseCommand(['list', '-A', '-n', 'x'])).toThrow('either --namespace or --all-namespaces');
    expect(() => parseCommand(['list', 'extra'])).toThrow('list takes no arguments');
  });

  test("approve and reject take one request, in kubectl's kind/name form too, and an optional reason", () => {
    expect(parseCommand(['approve', 'rr-1', '-n', 'prod', '--reason', ' checked '])).toMatchObject({
      kind: 'decide',
      name: 'rr-1',
      decision: 'Approved',
      reason: 'checked',
      conn: { namespace: 'prod' },
    });
    expect(parseCommand(['reject', 'remediationrequest/rr-2'])).toMatchObject({ kind: 'decide', name: 'rr-2', decision: 'Rejected' });
    expect(parseCommand(['reject', 'rr-2'])).not.toHaveProperty('reason');
    expect(() => parseCommand(['approve'])).toThrow('approve takes exactly one RemediationRequest name, got 0');
    expect(() => parseCommand(['approve', 'a', 'b'])).toThrow('got 2');
    expect(() => parseCommand(['approve', 'a', '--reason', 'x'.repeat(1025)])).toThrow('limited to 1024 characters');
  });

  test('there is no flag to approve in another name', () => {
    expect(() => parseCommand(['approve', 'rr-1', '--approver', 'bob'])).toThrow(UsageError);
    expect(() => parseCommand(['approve', 'rr-1', '--as', 'bob'])).toThrow(UsageError);
  });

  test('flags that do not apply are refused rather than ignored', () => {
    expect(() => parseCommand(['describe', 'rr-1', '--reason', 'x'])).toThrow('--reason does not apply to describe');
    expect(() => parseCommand(['approve', 'rr-1', '-A'])).toThrow('--all-namespaces does not apply to approve');
  });

  test('help, version, resume, whoami and unknown commands', () => {
    expect(parseCommand([])).toEqual({ kind: 'help' });
    expect(parseCommand(['approve', '--help'])).toEqual({ kind: 'help' });
    expect(parseCommand(['--version'])).toEqual({ kind: 'version' });
    expect(parseCommand(['resume', 'restart-nginx'])).toMatchObject({ kind: 'resume', policy: 'restart-nginx' });
    expect(() => parseCommand(['resume'])).toThrow('resume takes exactly one AlertPolicy name');
    expect(parseCommand(['whoami', '--kubeconfig', '/tmp/k'])).toMatchObject({ kind: 'whoami', conn: { kubeconfig: '/tmp/k' } });
    expect(() => parseCommand(['delete', 'x'])).toThrow('unknown command "delete"');
    expect(() => parseCommand(['list', '--bogus'])).toThrow(UsageError);
  });

  test('ui: namespace or all, and a port', () => {
    expect(parseCommand(['ui'])).toEqual({
      kind: 'ui',
      conn: { namespace: undefined, context: undefined, kubeconfig: undefined },
      allNamespaces: false,
      port: 0,
      sink: {},
    });
    expect(parseCommand(['ui', '-A', '--port', '8001'])).toMatchObject({ kind: 'ui', allNamespaces: true, port: 8001 });
    expect(parseCommand(['ui', '--bucket', 'b', '--prefix', 'p', '--region', 'eu-west-1'])).toMatchObject({
      kind: 'ui',
      sink: { bucket: 'b', prefix: 'p', region: 'eu-west-1' },
    });
    expect(() => parseCommand(['list', '--log-group', 'g'])).toThrow('--log-group does not apply to list');
    expect(() => parseCommand(['ui', '--port', '70000'])).toThrow('--port must be a port number');
    expect(() => parseCommand(['ui', '-A', '-n', 'x'])).toThrow('use either --namespace or --all-namespaces');
    expect(() => parseCommand(['ui', '--reason', 'x'])).toThrow('--reason does not apply to ui');
  });
});

test("the plugin version is package.json's", () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  expect(PLUGIN_VERSION).toBe(pkg.version);
  expect(PLUGIN_VERSION).toMatch(/^\d+\.\d+\.\d+/);
});
