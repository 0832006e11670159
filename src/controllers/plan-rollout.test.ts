import type { AlertPolicy, RemediationRequest, Runbook } from '../api/v1alpha1/index.js';
import { renderPlan } from './plan-render.js';
import { ROLLOUT_EXECUTION, RolloutError } from './rollout.js';

// The approved plan includes the rollout (docs/rollouts.md): what an approver approves is
// also how fast and in which waves it goes out. Kept apart from plan.test.ts, which
// covers the digest itself.

const targets = Array.from({ length: 120 }, (_, i) => `i-${(0x10000000 + i).toString(16)}`);
const rr: RemediationRequest = {
  metadata: { name: 'r', namespace: 'web', uid: 'u' },
  spec: { policyRef: { name: 'p' }, alert: { source: 'generic', name: 'A' } },
};
const runbook = (rollout?: NonNullable<Runbook['spec']['action']['ssm']>['rollout']): Runbook => ({
  metadata: { name: 'rb', generation: 1 },
  spec: {
    namespaceSelector: {},
    action: {
      ssm: { parameters: [{ name: 'commands', values: ['true'] }], maxConcurrency: '10', maxErrors: '2', ...(rollout && { rollout }) },
    },
  },
});
const policy = (safety?: AlertPolicy['spec']['safety']): AlertPolicy => ({
  metadata: { name: 'p', namespace: 'web', generation: 1 },
  spec: { targets: {}, runbookRef: { name: 'rb' }, ...(safety && { safety }) },
});
const plan = (rb: Runbook, p: AlertPolicy) =>
  renderPlan({ rr, policy: p, runbook: rb, risk: 'Low', targets, region: 'eu-west-1', status: {} }).plan;

test('a runbook without a rollout plans as before: no rollout in the plan', () => {
  const p = plan(runbook(), policy());
  expect(p.ssm?.rollout).toBeUndefined();
  expect(p.ssm).toMatchObject({ maxConcurrency: '10', maxErrors: '2' });
});

test('this controller executes rollouts: a plan with waves is accepted; limits alone are not a rollout', () => {
  // With ROLLOUT_EXECUTION off, planning such a runbook fails closed (plan.ts); the execution path exists, so it is on.
  expect(ROLLOUT_EXECUTION).toBe(true);
  expect(plan(runbook({ waves: [{ size: '1' }, { size: '25%' }] }), policy()).ssm?.rollout?.waves[0]).toBe(1);
  // maxConcurrency and maxErrors alone are not a rollout: a policy may still lower them.
  const lowered = plan(runbook(), policy({ rollout: { maxConcurrency: '5' } })).ssm;
  expect(lowered).toMatchObject({ maxConcurrency: '5', maxErrors: '2' });
  expect(lowered?.rollout).toBeUndefined();
});

test('the plan carries the waves, pause, verification and alarms, and its digest covers them', () => {
  const rb = runbook({ waves: [{ size: '1' }, { size: '25%' }], pauseBetweenWaves: '1m', alarms: ['fleet-5xx'] });
  const p = plan(rb, policy());
  expect(p.ssm?.rollout).toEqual({ waves: [1, 30, 30, 30, 29], pauseSeconds: 60, alarms: ['fleet-5xx'], ignorePollAlarmFailure: false });
  expect(p.digest).not.toBe(plan(runbook(), policy()).digest);
});

test('a policy only makes it more cautious, and the approver sees that in the plan', () => {
  const rb = runbook({ waves: [{ size: '1' }, { size: '25%' }] });
  const cautious = plan(rb, policy({ rollout: { waves: [{ size: '1' }, { size: '10%' }], maxConcurrency: '5', maxErrors: '50' } }));
  expect(cautious.ssm?.rollout?.waves.slice(0, 3)).toEqual([1, 12, 12]);
  expect(cautious.ssm).toMatchObject({ maxConcurrency: '5', maxErrors: '2' });
});

test('a rollout a request cannot hold fails planning with what to change', () => {
  expect(() => plan(runbook({ waves: [{ size: '1' }] }), policy())).toThrow(RolloutError);
});
