// Certificates and keys for the local control plane: a throwaway CA, kube-apiserver's
// serving certificate (signed by that CA, so clients verify TLS for real instead of
// skipping it), an admin client certificate in group system:masters, and the
// ServiceAccount token signing key pair. Keys come from node:crypto; certificates from
// the openssl CLI, since Node cannot issue X.509 certificates. Each openssl call gets
// its own minimal config file so the machine's openssl.cnf cannot change the result.

import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertPair {
  cert: string; // file path
  key: string; // file path
}

export interface Pki {
  dir: string;
  ca: CertPair & { pem: string };
  serving: CertPair;
  admin: CertPair & { certPem: string; keyPem: string };
  serviceAccount: { privateKey: string; publicKey: string }; // file paths
}

const VALID_DAYS = 7;

function writeKey(path: string): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(path, pem, { mode: 0o600 });
  return pem;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// `-subj` wants a distinguished_name section to exist, even an empty one.
const REQ_CONFIG = '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n';

function issue(dir: string, name: string, subject: string, extensions: string, ca: CertPair): CertPair {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const reqCnf = join(dir, `${name}.req.cnf`);
  const extCnf = join(dir, `${name}.ext.cnf`);
  writeKey(key);
  writeFileSync(reqCnf, REQ_CONFIG);
  writeFileSync(extCnf, `[ext]\n${extensions}\n`);
  openssl(['req', '-new', '-config', reqCnf, '-key', key, '-subj', subject, '-out', csr]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-set_serial',
    `0x${randomBytes(12).toString('hex')}`,
    '-days',
    String(VALID_DAYS),
    '-extfile',
    extCnf,
    '-extensions',
    'ext',
    '-out',
    cert,
  ]);
  return { cert, key };
}

/** Creates everything under `dir` (mode 0700). */
export function createPki(dir: string, opts: { serviceIp?: string } = {}): Pki {
  mkdirSync(dir, { recursive: true, mode: 0o700 });

  const ca: CertPair = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  writeKey(ca.key);
  const caCnf = join(dir, 'ca.cnf');
  writeFileSync(
    caCnf,
    REQ_CONFIG +
      '[ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign, digitalSignature\nsubjectKeyIdentifier = hash\n',
  );
  openssl([
    'req',
    '-x509',
    '-new',
    '-config',
    caCnf,
    '-extensions',
    'ext',
    '-key',
    ca.key,
    '-subj',
    '/CN=remediator-testbed-ca',
    '-days',
    String(VALID_DAYS),
    '-out',
    ca.cert,
  ]);

  // The names a client may use: loopback here, the in-cluster names for completeness.
  const sans = [
    'IP:127.0.0.1',
    'DNS:localhost',
    `IP:${opts.serviceIp ?? '10.0.0.1'}`,
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
  ].join(', ');
  const serving = issue(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    `basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = ${sans}`,
    ca,
  );
  // kube-apiserver maps a client certificate's CN to the user and each O to a group.
  const admin = issue(
    dir,
    'admin',
    '/O=system:masters/CN=testbed-admin',
    'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = clientAuth',
    ca,
  );

  const sa = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const serviceAccount = { privateKey: join(dir, 'sa.key'), publicKey: join(dir, 'sa.pub') };
  writeFileSync(serviceAccount.privateKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(serviceAccount.publicKey, sa.publicKey.export({ type: 'spki', format: 'pem' }));

  const read = (path: string): string => readFileSync(path, 'utf8');
  return {
    dir,
    ca: { ...ca, pem: read(ca.cert) },
    serving,
    admin: { ...admin, certPem: read(admin.cert), keyPem: read(admin.key) },
    serviceAccount,
  };
}
