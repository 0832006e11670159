/**
 * The `ui` page's views, rendered on the server as plain HTML with forms and no
 * script: the inbox, one request (plan, what changed, targets, timeline, decision), all
 * requests, and history. Pure functions of what the API server returned, so escaping
 * and layout are unit-tested; every value goes through the escaping `html` template.
 */
import { END_PHASES, type MetricSeries, type Phase, type Plan, type RemediationRequest } from '../../api/v1alpha1/index.js';
import { age } from '../format.js';
import type { HistoryEntry } from './history.js';
import { type Html, html } from './html.js';
import type { PlanHistory } from './plan-memory.js';
import type { TimelineEntry } from './timeline.js';

export interface Layout {
  /** Path prefix carrying the session token: every link and form starts with it. */
  base: string;
  user: string;
  scope: string;
  now: number;
}

export interface Flash {
  ok: boolean;
  message: string;
}

export const CSS = `
:root { color-scheme: light; font-family: system-ui, sans-serif; font-size: 15px; }
body { margin: 0; background: #f6f7f9; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.2rem; align-items: baseline; }
header a { color: #cfe0ff; text-decoration: none; }
header .who { margin-left: auto; color: #c9ced8; }
main { padding: 1rem 1.2rem; max-width: 72rem; }
h1 { font-size: 1.35rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
code, pre { font-family: ui-monospace, monospace; font-size: .9em; }
pre { background: #fff; border: 1px solid #e3e6eb; padding: .5rem; white-space: pre-wrap; word-break: break-all; margin: .2rem 0; }
.risk-Low { color: #246b2c; } .risk-Medium { color: #8a6100; } .risk-High, .risk-Critical { color: #b3261e; font-weight: 600; }
.flash { padding: .6rem .8rem; margin: 0 0 1rem; border-radius: 4px; }
.flash.ok { background: #e3f4e5; border: 1px solid #8fcf96; }
.flash.error { background: #fde8e6; border: 1px solid #f0a39b; }
.note { color: #5a6275; }
.changed { background: #fff6db; border: 1px solid #e8c75a; padding: .5rem .8rem; }
.decide { background: #fff; border: 1px solid #e3e6eb; padding: .8rem; display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; }
.decide input[type=text] { flex: 1; min-width: 14rem; padding: .35rem; }
button { padding: .45rem 1rem; border-radius: 4px; border: 1px solid #888; cursor: pointer; font-size: 1em; }
button.approve { background: #1f7a35; color: #fff; border-color: #1f7a35; }
button.reject { background: #fff; color: #b3261e; border-color: #b3261e; }
.warning td { color: #b3261e; }
dl { display: grid; grid-template-columns: 11rem 1fr; gap: .25rem .8rem; background: #fff; padding: .6rem .8rem; border: 1px solid #e3e6eb; margin: 0; }
dt { color: #5a6275; } dd { margin: 0; }
svg.spark { vertical-align: middle; }
`;

function page(layout: Layout, title: string, body: Html, flash?: Flash): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title} · remediator</title><link rel="stylesheet" href="${layout.base}/app.css"></head>
<body><header><strong>remediator</strong>
<a href="${layout.base}/">Inbox</a><a href="${layout.base}/all">All requests</a><a href="${layout.base}/history">History</a>
<span class="who">${layout.user} · ${layout.scope}</span></header>
<main>${flash ? html`<div class="flash ${flash.ok ? 'ok' : 'error'}" role="status" id="flash">${flash.message}</div>` : ''}${body}</main>
</body></html>`.text;
}

const requestPath = (layout: Layout, rr: RemediationRequest): string =>
  `${layout.base}/rr/${encodeURIComponent(rr.metadata?.namespace ?? '')}/${encodeURIComponent(rr.metadata?.name ?? '')}`;

const risk = (r: string | undefined): Html => (r ? html`<span class="risk-${r}">${r}</span>` : html`-`);

export interface InboxItem {
  rr: RemediationRequest;
  /** Why this user cannot decide it, when the API server would refuse (no approve verb, four eyes). */
  blocked?: string;
}

function requestRows(layout: Layout, items: InboxItem[], withReason: boolean): Html {
  return html`<table><thead><tr><th>Request</th><th>Risk</th><th>Alert</th><th>Requested by</th><th>Targets</th><th>Age</th>${
    withReason ? html`<th>Why not you</th>` : ''
  }</tr></thead><tbody>${items.map(
    ({ rr, blocked }) => html`<tr data-request="${rr.metadata?.namespace}/${rr.metadata?.name}">
<td><a href="${requestPath(layout, rr)}">${rr.metadata?.namespace}/${rr.metadata?.name}</a></td><td>${risk(rr.status?.risk)}</td>
<td>${rr.spec.alert.source}/${rr.spec.alert.name}</td><td>${rr.spec.requestedBy ?? '-'}</td>
<td>${rr.status?.targetCount ?? rr.status?.targets?.length ?? '-'}</td><td>${age(rr.metadata?.creationTimestamp, layout.now)}</td>${
      withReason ? html`<td>${blocked}</td>` : ''
    }</tr>`,
  )}</tbody></table>`;
}

/** Requests waiting for approval: those this user may decide first, then the others and why not. */
export function inboxPage(layout: Layout, items: InboxItem[]): string {
  const mine = items.filter((i) => !i.blocked);
  const others = items.filter((i) => i.blocked);
  return page(
    layout,
    'Inbox',
    html`<h1>Waiting for you <span class="note">(${mine.length})</span></h1>
${mine.length === 0 ? html`<p class="note" id="inbox-empty">Nothing is waiting for your approval.</p>` : requestRows(layout, mine, false)}
${others.length > 0 ? html`<h2>Waiting for someone else</h2>${requestRows(layout, others, true)}` : ''}`,
  );
}

export function allPage(layout: Layout, items: RemediationRequest[]): string {
  return page(
    layout,
    'All requests',
    html`<h1>All requests <span class="note">(${items.length})</span></h1>
<table><thead><tr><th>Request</th><th>Phase</th><th>Risk</th><th>Decision</th><th>Alert</th><th>Age</th></tr></thead><tbody>${items.map(
      (rr) => html`<tr><td><a href="${requestPath(layout, rr)}">${rr.metadata?.namespace}/${rr.metadata?.name}</a></td>
<td>${rr.status?.phase ?? 'Pending'}</td><td>${risk(rr.status?.risk)}</td>
<td>${rr.spec.approval ? `${rr.spec.approval.decision} by ${rr.spec.approval.approver}` : '-'}</td>
<td>${rr.spec.alert.source}/${rr.spec.alert.name}</td><td>${age(rr.metadata?.creationTimestamp, layout.now)}</td></tr>`,
    )}</tbody></table>`,
  );
}

export function historyPage(layout: Layout, source: string | undefined, entries: HistoryEntry[] | undefined, error?: string): string {
  let body: Html;
  if (source === undefined) {
    body = html`<p class="note" id="history-none">No audit history source is configured for this page, so only requests the cluster still
keeps are shown (see <a href="${layout.base}/all">All requests</a>). Finished requests are deleted by retention; their durable
record is read by <code>kubectl remediator history</code>.</p>`;
  } else if (error !== undefined) {
    body = html`<div class="flash error">Could not read the history from ${source}: ${error}</div>`;
  } else {
    body = html`<p class="note">From ${source}.</p><table><thead><tr><th>Request</th><th>Outcome</th><th>Finished</th><th>Requested by</th>
<th>Decision</th><th>Plan</th><th>Chain</th></tr></thead><tbody>${(entries ?? []).map(
      (e) => html`<tr><td>${e.namespace}/${e.name}</td><td>${e.outcome}</td><td>${e.finishedAt ?? '-'}</td><td>${e.requestedBy ?? '-'}</td>
<td>${e.decision ? `${e.decision} by ${e.approver ?? '?'}` : '-'}</td><td><code>${e.planDigest ?? '-'}</code></td>
<td>${e.verified === undefined ? '-' : e.verified ? 'intact' : 'BROKEN'}</td></tr>`,
    )}</tbody></table>`;
  }
  return page(layout, 'History', html`<h1>History</h1>${body}`);
}

function planView(plan: Plan): Html {
  return html`<dl id="plan">
<dt>Digest</dt><dd><code id="plan-digest">${plan.digest}</code></dd>
<dt>Runbook</dt><dd>${plan.runbook.name} (generation ${plan.runbook.generation}); policy generation ${plan.policyGeneration}</dd>
<dt>Risk</dt><dd>${risk(plan.risk)}</dd>
<dt>Where</dt><dd>region ${plan.region}${plan.roleArn ? `, as ${plan.roleArn}` : ", the controller's own account"}</dd>
<dt>Targets</dt><dd>${plan.targets.join(', ')} (${plan.targets.length})</dd>
${
  plan.ssm
    ? html`<dt>Document</dt><dd>${plan.ssm.documentName} (timeout ${plan.ssm.timeoutSeconds}s, concurrency ${plan.ssm.maxConcurrency}, errors ${plan.ssm.maxErrors})</dd>
${Object.entries(plan.ssm.parameters).map(([name, values]) => html`<dt>Parameter ${name}</dt><dd><pre>${values.join('\n')}</pre></dd>`)}`
    : ''
}${
  plan.sns
    ? html`<dt>SNS topic</dt><dd>${plan.sns.topicArn}</dd>${plan.sns.subject ? html`<dt>Subject</dt><dd>${plan.sns.subject}</dd>` : ''}
<dt>Message</dt><dd><pre>${plan.sns.messagePreview}</pre></dd>`
    : ''
}</dl>`;
}

function changesView(history: PlanHistory | undefined, plan: Plan, now: number): Html {
  if (!history?.previous) {
    return html`<p class="note" id="plan-unchanged">No earlier plan of this request was shown on this page (status keeps only the current plan).</p>`;
  }
  return html`<div class="changed" id="plan-changed"><strong>The plan changed</strong> since this page showed it ${age(
    new Date(history.previous.seenAt),
    now,
  )} ago: digest <code>${history.previous.plan.digest}</code> → <code>${plan.digest}</code>.
${
  history.changes.length === 0
    ? html`<p>No field differs apart from the digest.</p>`
    : html`<table><thead><tr><th>Field</th><th>Before</th><th>Now</th></tr></thead><tbody>${history.changes.map(
        (c) => html`<tr><td><code>${c.field}</code></td><td><pre>${c.before}</pre></td><td><pre>${c.after}</pre></td></tr>`,
      )}</tbody></table>`
}</div>`;
}

function sparkline(values: number[]): Html {
  if (values.length < 2) return html``;
  const min = Math.min(...values);
  const max = Math.max(...values);
  const points = values.map(
    (v, i) => `${((i / (values.length - 1)) * 100).toFixed(1)},${(18 - ((v - min) / (max - min || 1)) * 16).toFixed(1)}`,
  );
  return html`<svg class="spark" width="100" height="20" viewBox="0 0 100 20" aria-hidden="true"><polyline fill="none" stroke="#3b6fd8" stroke-width="1.5" points="${points.join(' ')}"/></svg>`;
}

function fmt(n: number | undefined): string {
  return n === undefined ? '-' : Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function targetsView(rr: RemediationRequest): Html {
  const e = rr.status?.enrichment;
  const targets = rr.status?.targets ?? rr.spec.targets ?? [];
  if (!e || e.instances.length === 0) {
    return html`<p class="note">${targets.length > 0 ? `${targets.join(', ')} (no enrichment recorded)` : 'No targets resolved yet.'}</p>`;
  }
  const metrics = e.metrics ?? [];
  const seriesOf = (id: string): MetricSeries[] => metrics.filter((m) => m.instanceId === id);
  const fleetWide = metrics.filter((m) => !m.instanceId);
  // Oldest to newest, whatever order the controller stored them in.
  const inTimeOrder = (m: MetricSeries): number[] =>
    m.values
      .map((v, i) => [Date.parse(m.timestamps[i] ?? ''), v] as const)
      .sort((x, y) => x[0] - y[0])
      .map(([, v]) => v);
  const metricCell = (series: MetricSeries[]) =>
    series.map((m) => {
      const values = inTimeOrder(m);
      return html`<div>${m.name} (${m.statistic}): mean ${fmt(m.mean)}, last ${fmt(values.at(-1))} ${sparkline(values)}</div>`;
    });
  return html`<p class="note">Observed ${e.observedAt}.</p>
<table id="targets"><thead><tr><th>Instance</th><th>State</th><th>Type / zone</th><th>SSM agent</th><th>Tags</th><th>Metrics</th></tr></thead><tbody>${e.instances.map(
    (i) => html`<tr><td><code>${i.instanceId}</code><br><span class="note">${i.privateIpAddress ?? ''}</span></td><td>${i.state ?? '-'}</td>
<td>${i.instanceType ?? '-'}<br><span class="note">${i.availabilityZone ?? ''}</span></td><td>${i.pingStatus ?? '-'}</td>
<td>${Object.entries(i.tags ?? {}).map(([k, v]) => html`<div><code>${k}</code>=${v}</div>`)}</td><td>${metricCell(seriesOf(i.instanceId))}</td></tr>`,
  )}</tbody></table>${fleetWide.length > 0 ? html`<p>${metricCell(fleetWide)}</p>` : ''}`;
}

function timelineView(entries: TimelineEntry[], now: number, eventsReadable: boolean): Html {
  return html`<table id="timeline"><thead><tr><th>When</th><th>What</th><th>Detail</th></tr></thead><tbody>${entries.map(
    (e) =>
      html`<tr class="${e.kind}${e.warning ? ' warning' : ''}"><td title="${e.time}">${age(e.time, now)} ago</td><td>${e.what}</td><td>${
        e.detail ?? ''
      }</td></tr>`,
  )}</tbody></table>${eventsReadable ? '' : html`<p class="note">You may not list Events in this namespace; they are not shown.</p>`}`;
}

export interface RequestView {
  rr: RemediationRequest;
  planHistory?: PlanHistory;
  timeline: TimelineEntry[];
  eventsReadable: boolean;
  /** Why the API server would refuse this user's decision, when known beforehand. */
  blocked?: string;
}

export function requestPage(layout: Layout, v: RequestView, flash?: Flash): string {
  const { rr } = v;
  const s = rr.status ?? {};
  const phase = (s.phase ?? 'Pending') as Phase;
  const a = rr.spec.approval;
  const labels = Object.entries(rr.spec.alert.labels ?? {});
  const decidable = !a && !END_PHASES.has(phase);
  const approvable = decidable && phase === 'AwaitingApproval' && s.plan !== undefined;
  const action = `${requestPath(layout, rr)}/decide`;
  return page(
    layout,
    `${rr.metadata?.namespace}/${rr.metadata?.name}`,
    html`<h1>${rr.metadata?.namespace}/${rr.metadata?.name}</h1>
<dl id="summary">
<dt>Phase</dt><dd id="phase">${phase}${s.reason ? ` (${s.reason})` : ''}</dd>
${s.message ? html`<dt>Message</dt><dd>${s.message}</dd>` : ''}
<dt>Risk</dt><dd>${risk(s.risk)}</dd>
<dt>Policy</dt><dd>${rr.spec.policyRef.name}</dd>
<dt>Requested by</dt><dd>${rr.spec.requestedBy ?? '-'}</dd>
<dt>Decision</dt><dd id="decision">${a ? `${a.decision} by ${a.approver}${a.reason ? ` (${a.reason})` : ''}` : 'none yet'}</dd>
<dt>Alert</dt><dd>${rr.spec.alert.source}/${rr.spec.alert.name} (${rr.spec.alert.status ?? 'firing'})</dd>
<dt>Labels</dt><dd id="labels">${labels.length === 0 ? '-' : labels.map(([k, v]) => html`<div><code>${k}</code>=${v}</div>`)}</dd>
</dl>
${
  decidable
    ? html`<h2>Decision</h2>
${v.blocked ? html`<p class="note" id="blocked">The API server will likely refuse you: ${v.blocked}.</p>` : ''}
<form class="decide" method="post" action="${action}">
<input type="hidden" name="planDigest" value="${s.plan?.digest ?? ''}">
<input type="text" name="reason" maxlength="1024" placeholder="Reason (recorded with your decision)">
${approvable ? html`<button class="approve" type="submit" name="decision" value="Approved" id="approve">Approve this plan</button>` : ''}
<button class="reject" type="submit" name="decision" value="Rejected" id="reject">Reject</button>
</form>
${
  approvable
    ? html`<p class="note">Approving names the digest shown below; if the plan changes before you click, the API server refuses it.</p>`
    : html`<p class="note">Approval opens once the request is AwaitingApproval with a plan.</p>`
}`
    : ''
}
<h2>Plan</h2>
${s.plan ? html`${changesView(v.planHistory, s.plan, layout.now)}${planView(s.plan)}` : html`<p class="note">No plan rendered yet.</p>`}
<h2>Targets</h2>
${targetsView(rr)}
<h2>Timeline</h2>
${timelineView(v.timeline, layout.now, v.eventsReadable)}`,
    flash,
  );
}

export function errorPage(layout: Layout, title: string, message: string): string {
  return page(layout, title, html`<h1>${title}</h1>`, { ok: false, message });
}
