import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdDirectories, renderedApiDocs, renderedCrds } from '../../../hack/gen-manifests.js';

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
});
