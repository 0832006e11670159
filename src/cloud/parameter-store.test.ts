import { isParameterStoreReference, parseParameterStoreReference } from './parameter-store.js';

describe('isParameterStoreReference', () => {
  it.each([
    '{{ssm:/app/prod/db-host}}',
    '{{ssm-secure:/app/prod/db-password}}',
    '{{ssm:flat_name.v2}}',
    '{{ssm:/app/setting:3}}',
    '{{ssm:/app/setting:prod-label}}',
    '{{ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64}}',
    '{{ssm-secure:/aws/reference/secretsmanager/db-credentials}}',
    `{{ssm:/${Array.from({ length: 15 }, (_, i) => `l${i}`).join('/')}}}`,
    `{{ssm:/${'a'.repeat(1010)}}}`,
  ])('accepts %s', (value) => {
    expect(isParameterStoreReference(value)).toBe(true);
  });

  it.each([
    ['a plain value', '/app/prod/db-host'],
    ['a reference inside other text', 'echo {{ssm:/app/x}}'],
    ['two references', '{{ssm:/a}}{{ssm:/b}}'],
    ['spaces inside the braces', '{{ ssm:/app/x }}'],
    ['another resolver', '{{resolve:secretsmanager:x}}'],
    ['an unknown scheme', '{{ssm-param:/app/x}}'],
    ['an empty name', '{{ssm:}}'],
    ['shell syntax in the name', '{{ssm:/app/$(id)}}'],
    ['a space in the name', '{{ssm:/app/my name}}'],
    ['an empty level', '{{ssm:/app//x}}'],
    ['a trailing slash', '{{ssm:/app/x/}}'],
    ['a dot-dot level', '{{ssm:/app/../secret}}'],
    ['a slash in a flat name', '{{ssm:app/x}}'],
    ['16 levels', `{{ssm:/${Array.from({ length: 16 }, (_, i) => `l${i}`).join('/')}}}`],
    ['a name over 1011 characters', `{{ssm:/${'a'.repeat(1011)}}}`],
    ['the reserved aws prefix', '{{ssm:awsconfig}}'],
    ['the reserved ssm prefix in any case', '{{ssm:/SSM/x}}'],
    ['an aws namespace AWS does not publish', '{{ssm:/aws/private/x}}'],
    ['a version 0', '{{ssm:/app/x:0}}'],
    ['a label with a reserved prefix', '{{ssm:/app/x:awsLabel}}'],
    ['two selectors', '{{ssm:/app/x:1:2}}'],
    ['nested braces', '{{ssm:{{ssm:/x}}}}'],
  ])('refuses %s', (_what, value) => {
    expect(isParameterStoreReference(value)).toBe(false);
  });

  it('parses the kind, name and selector', () => {
    expect(parseParameterStoreReference('{{ssm-secure:/app/pw:7}}')).toEqual({ kind: 'ssm-secure', name: '/app/pw', selector: '7' });
    expect(parseParameterStoreReference('{{ssm:/app/x}}')).toEqual({ kind: 'ssm', name: '/app/x' });
  });
});
