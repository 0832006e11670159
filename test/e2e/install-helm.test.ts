/**
 * `helm install`, `helm upgrade` and `helm uninstall` against the real API server, as
 * docs/install.md tells users to run them: the release installs (CRDs already present
 * are left alone), an upgrade keeps the generated intake token, and an uninstall
 * removes the controller, its RBAC and the admission policy but keeps the CRDs (the
 * audit trail) and the token Secret.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART_DIR } from '../../hack/chart/render.js';
import { must, namespace, SCOPE_LABEL, suffix } from './install-chart.js';
import { testbedFromEnv } from './harness.js';

const id = suffix();
const NS = `rmd-helm-${id}`;
const RELEASE = `remediator-${id}`; // contains the chart name: objects are named after the release alone

describe('helm install / upgrade / uninstall', () => {
  const tb = testbedFromEnv();
  const values = join(tb.dir, `helm-values-${id}.json`);
  const token = async () =>
    must(await tb.kubectl(['get', 'secret', `${RELEASE}-intake-token`, '-n', NS, '-o', 'jsonpath={.data.token}']), 'token').stdout;
  const exists = async (...args: string[]) => (await tb.kubectl(['get', ...args, '-o', 'name'])).code === 0;

  beforeAll(async () => {
    // The admission policy binds only namespaces of this test's scope (none here but its own).
    // The CRDs are the test bed's, shared by every test file: this release must not own them
    // (upgrade.test.ts installs and upgrades them with helm on an API server of its own).
    writeFileSync(
      values,
      JSON.stringify({ crds: { enabled: false }, admissionPolicy: { namespaceSelector: { matchLabels: { [SCOPE_LABEL]: id } } } }),
    );
    await namespace(tb, NS);
  });

  afterAll(async () => {
    await tb.helm(['uninstall', RELEASE, '-n', NS, '--ignore-not-found']);
  });

  test('installs, upgrades keeping the intake token, and uninstalls keeping CRDs and the token', async () => {
    const installed = must(await tb.helm(['install', RELEASE, CHART_DIR, '-n', NS, '--values', values]), 'helm install');
    expect(installed.stdout).toContain('STATUS: deployed');
    expect(installed.stdout).toContain(`--clusterrole=${RELEASE}-approver`);
    expect(installed.stdout).toContain('WARNING: serviceAccount.roleArn is empty');
    const first = await token();
    expect(Buffer.from(first, 'base64').toString('utf8')).toMatch(/^[A-Za-z0-9]{48}$/);

    const upgraded = must(
      await tb.helm(['upgrade', RELEASE, CHART_DIR, '-n', NS, '--values', values, '--set', 'controller.logLevel=debug']),
      'helm upgrade',
    );
    expect(upgraded.stdout).toContain('REVISION: 2');
    expect(await token()).toBe(first);
    const env = must(
      await tb.kubectl([
        'get',
        'deployment',
        RELEASE,
        '-n',
        NS,
        '-o',
        'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="LOG_LEVEL")].value}',
      ]),
      'env',
    );
    expect(env.stdout).toBe('debug');

    must(await tb.helm(['uninstall', RELEASE, '-n', NS]), 'helm uninstall');
    expect(await exists('deployment', RELEASE, '-n', NS)).toBe(false);
    for (const role of ['approver', 'controller-trust', 'runbook-admin'])
      expect(await exists('clusterrole', `${RELEASE}-${role}`)).toBe(false);
    expect(await exists('validatingadmissionpolicy', `${RELEASE}-approvals`)).toBe(false);
    // CRDs stay: deleting one would delete every object of it, Runbooks included.
    for (const crd of ['remediationrequests', 'alertpolicies', 'runbooks']) expect(await exists('crd', `${crd}.remediator.dev`)).toBe(true);
    expect(await token()).toBe(first);
  });
});
