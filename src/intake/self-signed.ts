/**
 * A throwaway RSA key and self-signed certificate with the subject SNS signs with, for
 * the tests of the SNS intake (unit and end to end). Node can verify certificates but not
 * issue them; openssl (on every machine the tests run on) can. Not used by the product.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function selfSignedSnsCertificate(days = 2): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sns-cert-'));
  try {
    writeFileSync(join(dir, 'req.cnf'), '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n');
    execFileSync(
      'openssl',
      ['req', '-x509', '-config', join(dir, 'req.cnf'), '-newkey', 'rsa:2048', '-nodes'].concat([
        '-keyout',
        join(dir, 'k.pem'),
        '-out',
        join(dir, 'c.pem'),
        '-days',
        String(days),
        '-subj',
        '/CN=sns.amazonaws.com',
      ]),
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'k.pem'), 'utf8'), cert: readFileSync(join(dir, 'c.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
