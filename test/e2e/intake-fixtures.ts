/**
 * Payloads exactly as the senders users run send them, shaped after each sender's public
 * documentation (field names, types and value formats; the values are ours):
 * - Grafana alerting's webhook contact point example (Grafana docs, "Configure the
 *   webhook notifier for Alerting": `version: "1"`, `orgId`, `state`, `title`,
 *   `message`, per-alert `values`, `silenceURL`, `dashboardURL`, `panelURL`);
 * - the Datadog webhook payload docs/intake.md tells users to configure, with the
 *   values Datadog substitutes for its variables (`$ALERT_TRANSITION` is `Triggered`,
 *   `Recovered`, ...; `$DATE` epoch milliseconds; `$TAGS` comma-separated `key:value`);
 * - a PagerDuty v3 webhook (developer docs, "Webhooks v3 overview": `{ event: { id,
 *   event_type, resource_type, occurred_at, agent, client, data: <incident> } }`).
 * Used by the parsers' unit tests and the fire-then-resolve tests through the intake.
 */

export function grafanaWebhook(opts: { status: 'firing' | 'resolved'; instanceId: string; fingerprint: string; startsAt?: string }) {
  const startsAt = opts.startsAt ?? '2025-10-12T09:51:03.157076+02:00';
  const alert = {
    status: opts.status,
    labels: { alertname: 'High memory usage', team: 'blue', zone: 'us-1', instance_id: opts.instanceId, grafana_folder: 'EC2' },
    annotations: {
      description: 'The system has high memory usage',
      runbook_url: 'https://myrunbook.com/runbook/1234',
      summary: 'This alert was triggered for zone us-1',
    },
    startsAt,
    endsAt: opts.status === 'resolved' ? '2025-10-12T10:21:03.157076+02:00' : '0001-01-01T00:00:00Z',
    generatorURL: 'https://grafana.example.com/alerting/grafana/1afz29v7z/view?orgId=1',
    fingerprint: opts.fingerprint,
    silenceURL: 'https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DHigh+memory+usage',
    dashboardURL: '',
    panelURL: '',
    values: opts.status === 'firing' ? { B: 94.23943737541908, C: 1 } : null,
    valueString: opts.status === 'firing' ? "[ var='B' labels={instance_id=" + opts.instanceId + '} value=94.23943737541908 ]' : '',
  };
  const firing = opts.status === 'firing';
  return {
    receiver: 'remediator',
    status: opts.status,
    orgId: 1,
    alerts: [alert],
    groupLabels: { alertname: 'High memory usage', grafana_folder: 'EC2' },
    commonLabels: alert.labels,
    commonAnnotations: alert.annotations,
    externalURL: 'https://grafana.example.com/',
    version: '1',
    groupKey: '{}/{__grafana_receiver__="remediator"}:{alertname="High memory usage", grafana_folder="EC2"}',
    truncatedAlerts: 0,
    title: firing ? '[FIRING:1] High memory usage EC2 (blue us-1)' : '[RESOLVED] High memory usage EC2 (blue us-1)',
    state: firing ? 'alerting' : 'ok',
    message: firing
      ? '**Firing**\n\nValue: B=94.2, C=1\nLabels:\n - alertname = High memory usage\n'
      : '**Resolved**\n\nLabels:\n - alertname = High memory usage\n',
  };
}

/** The body Datadog sends for the payload template in docs/intake.md, after substituting its variables. */
export function datadogWebhook(opts: { transition: string; instanceId: string; monitorId: string; cycleKey: string; dateMs: number }) {
  const prefix = opts.transition === 'Recovered' ? `[Recovered on {host:${opts.instanceId}}]` : `[Triggered on {host:${opts.instanceId}}]`;
  return {
    id: '7473469394128093417',
    alert_id: opts.monitorId,
    alert_cycle_key: opts.cycleKey,
    title: `[P2] ${prefix} Disk almost full on /var`,
    alert_transition: opts.transition,
    alert_type: opts.transition === 'Recovered' ? 'success' : 'error',
    alert_priority: 'P2',
    alert_scope: `host:${opts.instanceId}`,
    hostname: opts.instanceId,
    tags: `env:prod,host:${opts.instanceId},instance_id:${opts.instanceId},monitor,team:web`,
    date: String(opts.dateMs),
    last_updated: String(opts.dateMs),
    link: `https://app.datadoghq.com/event/event?id=7473469394128093417`,
    event_msg: `%%%\nDisk usage on /var is above 90% on ${opts.instanceId}. @webhook-remediator\n%%%`,
  };
}

export function pagerDutyWebhook(opts: { eventType: string; incidentId: string; createdAt: string; occurredAt: string }) {
  const resolved = opts.eventType === 'incident.resolved';
  return {
    event: {
      id: '01DEN3GXK5F5QK5PYQY4ZCJK1S',
      event_type: opts.eventType,
      resource_type: 'incident',
      occurred_at: opts.occurredAt,
      agent: {
        html_url: 'https://acme.pagerduty.com/users/PLH1HKV',
        id: 'PLH1HKV',
        self: 'https://api.pagerduty.com/users/PLH1HKV',
        summary: 'Tenex Engineer',
        type: 'user_reference',
      },
      client: { name: 'PagerDuty' },
      data: {
        id: opts.incidentId,
        type: 'incident',
        self: `https://api.pagerduty.com/incidents/${opts.incidentId}`,
        html_url: `https://acme.pagerduty.com/incidents/${opts.incidentId}`,
        number: 2,
        status: resolved ? 'resolved' : 'triggered',
        incident_key: 'd3640fbd41094207a1c11e58e46b1662',
        created_at: opts.createdAt,
        title: 'nginx down on web tier',
        service: {
          html_url: 'https://acme.pagerduty.com/services/PF9KMXH',
          id: 'PF9KMXH',
          self: 'https://api.pagerduty.com/services/PF9KMXH',
          summary: 'web-frontend',
          type: 'service_reference',
        },
        assignees: [
          {
            html_url: 'https://acme.pagerduty.com/users/PTUXL6G',
            id: 'PTUXL6G',
            self: 'https://api.pagerduty.com/users/PTUXL6G',
            summary: 'User 123',
            type: 'user_reference',
          },
        ],
        escalation_policy: {
          html_url: 'https://acme.pagerduty.com/escalation_policies/PUS0KTE',
          id: 'PUS0KTE',
          self: 'https://api.pagerduty.com/escalation_policies/PUS0KTE',
          summary: 'Default',
          type: 'escalation_policy_reference',
        },
        teams: [
          {
            html_url: 'https://acme.pagerduty.com/teams/PFCVPS0',
            id: 'PFCVPS0',
            self: 'https://api.pagerduty.com/teams/PFCVPS0',
            summary: 'Engineering',
            type: 'team_reference',
          },
        ],
        priority: {
          html_url: 'https://acme.pagerduty.com/account/incident_priorities',
          id: 'PSO75BM',
          self: 'https://api.pagerduty.com/priorities/PSO75BM',
          summary: 'P1',
          type: 'priority',
        },
        urgency: 'high',
        conference_bridge: { conference_number: '+1 1234123412,,987654321#', conference_url: 'https://example.com' },
        resolve_reason: null,
      },
    },
  };
}
