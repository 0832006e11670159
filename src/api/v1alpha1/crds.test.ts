import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdDirectories, renderedApiDocs, renderedCrds } from '../../../hack/gen-manifests.js';
import { customResourceDefinitions } from './crds.js';

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

/**
 * Paths of the fields under `schema` that carry no description. Array items and map
 * values are described by the field that holds them, so only named properties count.
 */
function undescribed(schema: Schema, path: string): string[] {
  const missing: string[] = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const childPath = `${path}.${name}`;
    if (!child.description?.trim()) missing.push(childPath);
    missing.push(...undescribed(child, childPath));
  }
  if (schema.items) missing.push(...undescribed(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object') missing.push(...undescribed(schema.additionalProperties, `${path}{}`));
  return missing;
}

describe('generated CRDs', () => {
  test('the committed CRD YAML is exactly what the schemas generate (run `make manifests` when this fails)', () => {
    for (const dir of crdDirectories()) {
      for (const [name, content] of renderedCrds()) {
        expect(readFileSync(join(dir, name), 'utf8')).toBe(content);
      }
    }
  });

  test('docs/api.md documents exactly the current schema', () => {
    expect(readFileSync(join(crdDirectories()[0]!, '..', '..', '..', 'docs', 'api.md'), 'utf8')).toBe(renderedApiDocs());
  });

  test.each(customResourceDefinitions().map((crd) => [crd.spec.names.kind, crd] as const))(
    'every field of %s has a description for `kubectl explain`',
    (_kind, crd) => {
      const root = crd.spec.versions[0]!.schema.openAPIV3Schema as Schema;
      const fields = ['apiVersion', 'kind', 'spec', 'status'].flatMap((part) => {
        const schema = root.properties![part]!;
        return [...(schema.description?.trim() ? [] : [part]), ...undescribed(schema, part)];
      });
      expect(fields).toEqual([]);
    },
  );
});
