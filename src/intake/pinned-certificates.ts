/**
 * SNS signing certificates pinned from local files (`--sns-pinned-certificate
 * URL=path`). For clusters that cannot reach AWS's certificate hosts (air-gapped
 * egress, or a policy that forbids the controller fetching anything), and for running
 * the whole intake offline (`make demo`). The SigningCertURL rules are unchanged — the
 * URL must still be an SNS host of AWS — only where its certificate comes from differs:
 * a message naming a pinned URL is verified with the pinned certificate, and any other
 * URL falls through to the HTTPS source. Pinning is trust the operator grants on purpose,
 * exactly like adding a CA bundle.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkSigningCertUrl, type CertificateSource } from './sns.js';

export class PinnedCertificateSource implements CertificateSource {
  private readonly pinned = new Map<string, X509Certificate>();

  /** `pins` are `URL=path` entries; throws with a usable message on a bad one. */
  constructor(
    pins: readonly string[],
    private readonly fallback: CertificateSource,
  ) {
    for (const pin of pins) {
      const i = pin.lastIndexOf('=');
      if (i <= 0)
        throw new Error(`--sns-pinned-certificate "${pin}" must look like https://sns.<region>.amazonaws.com/<name>.pem=/path/to/cert.pem`);
      const url = checkSigningCertUrl(pin.slice(0, i));
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(readFileSync(pin.slice(i + 1)));
      } catch (error) {
        throw new Error(`--sns-pinned-certificate: cannot read a PEM certificate from ${pin.slice(i + 1)}: ${(error as Error).message}`);
      }
      this.pinned.set(url.href, cert);
    }
  }

  get(url: URL): Promise<X509Certificate> {
    const hit = this.pinned.get(url.href);
    return hit ? Promise.resolve(hit) : this.fallback.get(url);
  }

  verified(url: URL, cert: X509Certificate): void {
    if (!this.pinned.has(url.href)) this.fallback.verified?.(url, cert);
  }
}
