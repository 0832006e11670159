/**
 * Turns a policy's enrichment spec into CloudWatch queries (one per metric, or one per
 * metric and target when a dimension names the instance), folds the answers into the
 * request's status, and evaluates the guards. Pure: the AWS call happens in the
 * reconciler through `MetricsReader`.
 */
import {
  DEFAULT_ALLOWED_PATTERN,
  DEFAULT_MAX_VALUE_LENGTH,
  DEFAULT_OPT_OUT_TAG,
  type AlertPolicySpec,
  type Guard,
  type MetricSeries,
} from '../api/v1alpha1/index.js';
import type { InstanceFacts, MetricDataQuery, MetricDataResult } from '../cloud/types.js';
import { render, type TemplateContext } from './template.js';

const INSTANCE_PLACEHOLDER = /\{\{\s*instance\.id\s*\}\}/;

export interface PlannedQuery {
  query: MetricDataQuery;
  name: string;
  instanceId?: string;
}

export function planMetricQueries(spec: AlertPolicySpec, targets: readonly string[], ctx: TemplateContext): PlannedQuery[] {
  const out: PlannedQuery[] = [];
  const policy = { allowedPattern: DEFAULT_ALLOWED_PATTERN, maxLength: DEFAULT_MAX_VALUE_LENGTH };
  for (const m of spec.enrichment?.metrics ?? []) {
    const dims = m.dimensions ?? { InstanceId: '{{ instance.id }}' };
    const perInstance = Object.values(dims).some((v) => INSTANCE_PLACEHOLDER.test(v));
    for (const instanceId of perInstance ? targets : [undefined]) {
      const dimensions: Record<string, string> = {};
      for (const [k, v] of Object.entries(dims)) {
        dimensions[k] = render(v, instanceId ? { ...ctx, instance: { id: instanceId } } : ctx, policy);
      }
      out.push({
        name: m.name,
        instanceId,
        query: {
          id: `q${out.length}`,
          namespace: m.namespace,
          metricName: m.metricName,
          dimensions,
          statistic: m.statistic ?? 'Average',
          periodSeconds: m.periodSeconds ?? 60,
        },
      });
    }
  }
  return out;
}

export function seriesFrom(planned: readonly PlannedQuery[], results: ReadonlyMap<string, MetricDataResult>): MetricSeries[] {
  return planned.map((p) => {
    const r = results.get(p.query.id) ?? { values: [], timestamps: [] };
    const mean = r.values.length > 0 ? r.values.reduce((a, b) => a + b, 0) / r.values.length : undefined;
    return {
      name: p.name,
      ...(p.instanceId && { instanceId: p.instanceId }),
      statistic: p.query.statistic,
      // The newest 60 points per series: status stays far below etcd's object size limit
      // however many targets and metrics a policy has; the mean uses every point.
      values: r.values.slice(-60),
      timestamps: r.timestamps.slice(-60),
      ...(mean !== undefined && { mean: Math.round(mean * 1000) / 1000 }),
    };
  });
}

/**
 * The tags that keep an instance out: the cluster admin's (`--opt-out-tag`, default
 * remediator.dev/opt-out=true) always, and a policy's `enrichment.optOutTag` only as one
 * more. A policy can add opt-outs, never rename or remove the admin's: the team that
 * tagged its instance out relies on that tag whatever another team's policy says.
 */
export function optOutTags(
  spec: AlertPolicySpec,
  admin: { key: string; value: string } = DEFAULT_OPT_OUT_TAG,
): Array<{ key: string; value: string }> {
  const extra = spec.enrichment?.optOutTag;
  return extra && (extra.key !== admin.key || extra.value !== admin.value) ? [admin, extra] : [admin];
}

/** Why the request may not touch these instances (an opt-out tag always wins), or undefined. */
export function optedOutBy(
  spec: AlertPolicySpec,
  instances: readonly InstanceFacts[],
  admin: { key: string; value: string } = DEFAULT_OPT_OUT_TAG,
): string | undefined {
  for (const { key, value } of optOutTags(spec, admin)) {
    const ids = instances.filter((f) => f.tags[key] === value).map((f) => f.instanceId);
    if (ids.length > 0) return `instance(s) ${ids.join(', ')} carry ${key}=${value}`;
  }
  return undefined;
}

export function compare(a: number, op: NonNullable<Guard['operator']>, b: number): boolean {
  switch (op) {
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
  }
}

/** The first guard a target fails, described for a person; undefined when every guard passes. */
export function failedGuard(
  guards: readonly Guard[],
  instances: readonly InstanceFacts[],
  series: readonly MetricSeries[],
): string | undefined {
  for (const g of guards) {
    // agentOnline guards are checked by the planner, against SSM's view of the agents.
    if (g.tag) {
      const { key, value } = g.tag;
      for (const i of instances) {
        const v = i.tags[key];
        if (v === undefined || (value !== undefined && v !== value)) {
          return `${i.instanceId} does not carry tag ${key}${value !== undefined ? `=${value}` : ''}`;
        }
      }
      continue;
    }
    if (g.metric && g.operator && g.threshold !== undefined) {
      const relevant = series.filter((s) => s.name === g.metric);
      if (relevant.length === 0) return `guard names metric "${g.metric}", which enrichment.metrics does not define`;
      for (const s of relevant) {
        const who = s.instanceId ? ` on ${s.instanceId}` : '';
        if (s.mean === undefined)
          return `no datapoints for ${g.metric}${who} in the lookback; the guard ${g.metric} ${g.operator} ${g.threshold} cannot pass`;
        if (!compare(s.mean, g.operator, g.threshold))
          return `${g.metric}${who} averaged ${s.mean}, and the guard wants ${g.operator} ${g.threshold}`;
      }
    }
  }
  return undefined;
}
