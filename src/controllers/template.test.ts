import fc from 'fast-check';
import { DEFAULT_ALLOWED_PATTERN, DEFAULT_MAX_VALUE_LENGTH } from '../api/v1alpha1/index.js';
import {
  escapeJson,
  FORBIDDEN_CHARACTERS,
  forbiddenCharacter,
  placeholders,
  render,
  TemplateError,
  type TemplateContext,
} from './template.js';

const policy = { allowedPattern: DEFAULT_ALLOWED_PATTERN, maxLength: DEFAULT_MAX_VALUE_LENGTH };

function ctx(labels: Record<string, string>): TemplateContext {
  return { alert: { name: 'NginxDown', source: 'alertmanager' }, labels, annotations: { runbook: 'https://runbooks/x' } };
}

describe('render', () => {
  test('substitutes labels, annotations and alert fields', () => {
    expect(render('systemctl restart {{ labels.service }} # {{alert.name}}', ctx({ service: 'nginx' }), policy)).toBe(
      'systemctl restart nginx # NginxDown',
    );
    expect(render('echo {{ annotations.runbook }}', ctx({}), policy)).toBe('echo https://runbooks/x');
  });

  test('fails on a missing value instead of rendering an empty string', () => {
    expect(() => render('restart {{ labels.service }}', ctx({}), policy)).toThrow(/no value.*label "service"/);
  });

  test('rejects unknown roots and malformed placeholders', () => {
    expect(() => placeholders('{{ env.HOME }}')).toThrow(TemplateError);
    expect(() => placeholders('{{ labels }}')).toThrow(/names no field/);
    expect(() => placeholders('{{ labels.x ')).toThrow(/malformed/);
  });

  const hostile = [
    'nginx; rm -rf /',
    'nginx && curl evil',
    'nginx | sh',
    '$(reboot)',
    '`reboot`',
    "nginx' || true '",
    'nginx" ; echo "',
    'nginx\nreboot',
    'nginx\r\nreboot',
    '${IFS}reboot',
    'a b',
    'nginx>/etc/passwd',
    'nginx\u0000',
    '../../etc/shadow;',
    'x'.repeat(DEFAULT_MAX_VALUE_LENGTH + 1),
  ];
  test.each(hostile)('refuses the hostile value %j', (value) => {
    expect(() => render('systemctl restart {{ labels.service }}', ctx({ service: value }), policy)).toThrow(TemplateError);
  });

  test.each(['--help', '-rf', '../../etc/shadow', '/var/../etc', ''])(
    'refuses %j by default (options, paths upwards, empty values)',
    (value) => {
      expect(() => render('ls {{ labels.path }}', ctx({ path: value }), policy)).toThrow(TemplateError);
    },
  );

  test('allow: lifts exactly the rule it names', () => {
    expect(render('ls {{ labels.path }}', ctx({ path: '--help' }), { ...policy, allow: ['LeadingDash'] })).toBe('ls --help');
    expect(() => render('ls {{ labels.path }}', ctx({ path: '../x' }), { ...policy, allow: ['LeadingDash'] })).toThrow(/\.\./);
    expect(render('cat {{ labels.path }}', ctx({ path: '../../etc/shadow' }), { ...policy, allow: ['DotDot'] })).toBe(
      'cat ../../etc/shadow',
    );
    expect(() => render('cat {{ labels.path }}', ctx({ path: '' }), { ...policy, allow: ['DotDot'] })).toThrow(/empty/);
    expect(render('echo x{{ labels.path }}', ctx({ path: '' }), { ...policy, allow: ['Empty'] })).toBe('echo x');
  });

  test('Parameter Store references stay verbatim for SSM to resolve', () => {
    expect(render('curl -H {{ssm:/path}} {{ labels.service }}', ctx({ service: 'nginx' }), policy)).toBe('curl -H {{ssm:/path}} nginx');
    expect(render('token={{ssm-secure:/a/b}}', ctx({}), policy)).toBe('token={{ssm-secure:/a/b}}');
    expect(placeholders('{{ssm:/path}} {{ ssm-secure:/a/b }}')).toEqual([]);
  });

  test('{{ namespace }} is the request namespace, and takes no field', () => {
    expect(render('team={{ namespace }}', { ...ctx({}), namespace: 'team-a' }, policy)).toBe('team=team-a');
    expect(placeholders('{{ namespace }}')).toEqual(['namespace']);
    expect(() => placeholders('{{ namespace.x }}')).toThrow(/has no fields/);
    expect(() => render('team={{ namespace }}', ctx({}), policy)).toThrow(TemplateError);
  });

  test.each([
    ['LF', 'nginx\nreboot'],
    ['CR', 'nginx\rreboot'],
    ['TAB', 'a\tb'],
    ['NEL U+0085', 'a\u0085b'],
    ['CSI U+009B', 'a\u009b31m'],
    ['DEL', 'a\u007f'],
    ['RLO U+202E', 'txt.\u202Eexe'],
    ['LRI U+2066', 'a\u2066b'],
    ['PDI U+2069', 'a\u2069b'],
    ['line separator U+2028', 'a\u2028b'],
    ['zero-width space', 'a\u200Bb'],
    ['BOM', '\uFEFFa'],
  ])('refuses %s even where the pattern allows anything', (_what, value) => {
    const anything = { allowedPattern: '(?s).*', maxLength: 1000, allow: ['LeadingDash', 'DotDot', 'Empty'] as const };
    expect(() => render('msg {{ annotations.d }}', { ...ctx({}), annotations: { d: value } }, anything)).toThrow(
      /control or bidirectional character U\+/,
    );
  });

  test('a value never carries a Parameter Store reference or a placeholder, whatever the pattern', () => {
    const anything = { allowedPattern: '(?s).*', maxLength: 1000, allow: ['LeadingDash', 'DotDot', 'Empty'] as const };
    for (const v of ['{{ssm-secure:/prod/db-password}}', 'x {{ ssm:/a }}', '{{ labels.other }}'])
      expect(() => render('echo {{ labels.v }}', ctx({ v, other: 'x' }), anything)).toThrow(/contains "\{\{"/);
  });

  test('forbiddenCharacter names the first one, and passes ordinary text (accents, emoji, spaces)', () => {
    expect(forbiddenCharacter('ok\u0085')).toBe('U+0085');
    expect(forbiddenCharacter('a\u2067b')).toBe('U+2067');
    expect(forbiddenCharacter('Café ☕ — disk 97% full')).toBeUndefined();
  });

  test('property: no rendered value carries a C0/C1 control or a bidi character, whatever the pattern', () => {
    const anything = { allowedPattern: '(?s).*', maxLength: 1000, allow: ['LeadingDash', 'DotDot', 'Empty'] as const };
    fc.assert(
      fc.property(fc.string({ maxLength: 50, unit: 'binary' }), (value) => {
        let out: string;
        try {
          out = render('{{ labels.v }}', ctx({ v: value }), anything);
        } catch (error) {
          expect(error).toBeInstanceOf(TemplateError);
          return;
        }
        expect(out).not.toMatch(FORBIDDEN_CHARACTERS);
      }),
      { numRuns: 2_000 },
    );
  });

  test('escapeJson writes JSON escapes that parse back to the same value', () => {
    const json = JSON.stringify({ d: 'a\u0085b\u202Ec\nd\u2028' }, null, 2);
    const escaped = escapeJson(json);
    // What is left is JSON.stringify's own indentation, outside any string.
    expect(escaped.replace(/\n */g, '')).not.toMatch(FORBIDDEN_CHARACTERS);
    expect(escaped).toContain('\\u0085');
    expect(JSON.parse(escaped)).toEqual(JSON.parse(json));
  });

  test('a per-parameter pattern replaces the default', () => {
    const spaces = { allowedPattern: '[a-z ]*', maxLength: 20 };
    expect(render('echo {{ labels.msg }}', ctx({ msg: 'hello world' }), spaces)).toBe('echo hello world');
    expect(() => render('echo {{ labels.msg }}', ctx({ msg: 'hello;world' }), spaces)).toThrow(TemplateError);
  });

  test('property: a rendered value never carries a character outside the allowlist', () => {
    const allowed = /^[A-Za-z0-9._:/=@-]*$/;
    fc.assert(
      fc.property(fc.string({ maxLength: 300, unit: 'binary' }), (value) => {
        let out: string | undefined;
        try {
          out = render('run {{ labels.v }}', ctx({ v: value }), policy);
        } catch (error) {
          expect(error).toBeInstanceOf(TemplateError);
          return;
        }
        const v = out.slice(4);
        expect(v).toMatch(allowed);
        expect(v.startsWith('-')).toBe(false);
        expect(v).not.toContain('..');
        expect(v).not.toBe('');
        expect(out.length - 4).toBeLessThanOrEqual(DEFAULT_MAX_VALUE_LENGTH);
      }),
      { numRuns: 2_000 },
    );
  });
});
