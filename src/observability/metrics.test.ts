// The scrape-time gauges read whatever state they are given at each scrape: series come
// and go with the objects, and the approval wait is measured from the given clock.
import { Metrics, type ObservedPolicy, type ObservedRequest } from './metrics.js';

describe('scrape-time gauges', () => {
  test('are empty until a state is observed', async () => {
    const m = new Metrics(false);
    const text = await m.registry.metrics();
    expect(text).not.toMatch(/^remediator_requests\{/m);
    expect(text).not.toMatch(/^remediator_alertpolicy_circuit_open\{/m);
  });

  test('count requests by phase, age the oldest approval wait, and follow the objects', async () => {
    const m = new Metrics(false);
    let requests: ObservedRequest[] = [
      { namespace: 'web', phase: 'AwaitingApproval', phaseSince: 1_000_000 },
      { namespace: 'web', phase: 'AwaitingApproval', phaseSince: 1_500_000 },
      { namespace: 'web', phase: 'Succeeded', phaseSince: 0 },
      { namespace: 'db', phase: 'AwaitingApproval', phaseSince: 1_990_000 },
    ];
    let policies: ObservedPolicy[] = [
      { namespace: 'web', name: 'restart-nginx', circuitOpen: true },
      { namespace: 'db', name: 'vacuum', circuitOpen: false },
    ];
    m.observe({ requests: () => requests, policies: () => policies, now: () => 2_000_000 });

    let text = await m.registry.metrics();
    expect(text).toContain('remediator_requests{namespace="web",phase="AwaitingApproval"} 2');
    expect(text).toContain('remediator_requests{namespace="web",phase="Succeeded"} 1');
    expect(text).toContain('remediator_request_awaiting_approval_oldest_seconds{namespace="web"} 1000');
    expect(text).toContain('remediator_request_awaiting_approval_oldest_seconds{namespace="db"} 10');
    expect(text).toContain('remediator_alertpolicy_circuit_open{namespace="web",policy="restart-nginx"} 1');
    expect(text).toContain('remediator_alertpolicy_circuit_open{namespace="db",policy="vacuum"} 0');

    // Approved and deleted: their series go, they do not stay at the last value.
    requests = [{ namespace: 'web', phase: 'Succeeded', phaseSince: 0 }];
    policies = [];
    text = await m.registry.metrics();
    expect(text).not.toContain('phase="AwaitingApproval"');
    expect(text).not.toMatch(/^remediator_request_awaiting_approval_oldest_seconds\{/m);
    expect(text).not.toMatch(/^remediator_alertpolicy_circuit_open\{/m);
  });
});
