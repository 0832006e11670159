/**
 * `kubectl remediator migrate`: AlertPolicies written before Runbooks existed carry their
 * command inline (`spec.action`); the controller runs none of them (Ready=False,
 * MigrationRequired). This turns each into the two objects the trust model wants: a
 * Runbook holding the action, for a cluster administrator to review and create (teams
 * cannot write Runbooks), and the policy naming it in `spec.runbookRef`.
 *
 * The Runbook grants no more than the inline action did: it serves the policy's own
 * namespace only (the namespace's `kubernetes.io/metadata.name` label), its risk floor is
 * the policy's risk, it auto-approves only if the policy did and only up to that risk,
 * it caps targets at the policy's cap, runs in the controller's own account and region
 * as before, and it may announce only on the policy's own notify topic. Only the fields
 * the old schema had are copied, never unknown ones. The new value rules (no leading
 * dash, no `..`, no empty value) now apply too, which may refuse values the old
 * controller accepted: the notes say so.
 *
 * By default it only prints YAML (or writes files with --dir): reviewing is the point.
 * `--apply` creates the Runbook and replaces the policy as the current user, so it
 * works only for someone who may create Runbooks; the API server decides that.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import {
  ALERT_POLICY,
  API_VERSION,
  CHANGED_BY_ANNOTATION,
  GROUP,
  RUNBOOK,
  VERSION,
  type AlertPolicy,
  type Runbook,
} from '../api/v1alpha1/index.js';
import { apiMessage, Client, PluginError, statusCode } from './client.js';
import type { Connection } from './args.js';

/** The old schema's defaults (src/api/v1alpha1/alertpolicy.ts at b9539a7), where the stored policy relied on them. */
const OLD_DEFAULTS = { risk: 'Low', maxTargets: 10 } as const;
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/** On the Runbook: which policy it was made from (an administrator reviewing it sees where it came from). */
export const MIGRATED_FROM_ANNOTATION = 'remediator.dev/migrated-from';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
/** Copies only `keys` of `from` that are set: nothing the old schema did not have reaches the Runbook. */
const pick = (from: Json | undefined, keys: readonly string[]): Json =>
  Object.fromEntries(keys.filter((k) => from?.[k] !== undefined).map((k) => [k, structuredClone(from![k])]));

export interface Migration {
  runbook: Runbook;
  policy: AlertPolicy;
  /** What the reviewer should know, written as comments above the YAML. */
  notes: string[];
}

/**
 * The inline action of a stored policy: its `spec.action`, or, where a CRD without the
 * field already pruned it on a write, the copy in kubectl's last-applied annotation.
 */
function inlineAction(policy: AlertPolicy): { action: Json; notify?: Json; fromLastApplied: boolean } | undefined {
  const spec = policy.spec as unknown as Json;
  const stored = obj(spec['action']);
  if (stored) return { action: stored, fromLastApplied: false };
  if (spec['runbookRef'] !== undefined) return undefined;
  try {
    const applied = obj(obj(JSON.parse(policy.metadata?.annotations?.[LAST_APPLIED] ?? '{}'))?.['spec'])?.['action'];
    return obj(applied) ? { action: obj(applied)!, fromLastApplied: true } : undefined;
  } catch {
    return undefined;
  }
}

export function needsMigration(policy: AlertPolicy): boolean {
  return inlineAction(policy) !== undefined;
}

/** The Runbook name: cluster-scoped, so the namespace is part of it. */
export function runbookNameFor(namespace: string, name: string): string {
  return `${namespace}-${name}`.slice(0, 253).replace(/[-.]+$/, '');
}

function ssmAction(old: Json): Json {
  return {
    ...pick(old, ['documentName', 'timeoutSeconds', 'maxConcurrency', 'maxErrors']),
    parameters: ((old['parameters'] as Json[] | undefined) ?? []).map((p) => pick(p, ['name', 'values', 'allowedPattern', 'maxLength'])),
  };
}

/** Turns one stored policy with an inline action into a Runbook and the policy that uses it. */
export function migratePolicy(stored: AlertPolicy, writer: string): Migration {
  const found = inlineAction(stored);
  const ns = stored.metadata?.namespace ?? '';
  const name = stored.metadata?.name ?? '';
  if (!found) throw new PluginError(`AlertPolicy ${ns}/${name} has no inline spec.action: nothing to migrate`);
  const spec = stored.spec as unknown as Json;
  const risk = (spec['risk'] as string | undefined) ?? OLD_DEFAULTS.risk;
  const mode = (obj(spec['approval'])?.['mode'] as string | undefined) ?? (risk === 'Low' ? 'Auto' : 'Manual');
  const maxTargets = (obj(spec['targets'])?.['maxTargets'] as number | undefined) ?? OLD_DEFAULTS.maxTargets;
  const notify = obj(found.action['notify']);
  const rbName = runbookNameFor(ns, name);
  const notes = [
    `Runbook ${rbName}: from AlertPolicy ${ns}/${name}'s inline action; a cluster administrator reviews and creates it.`,
    `It serves namespace ${ns} only, risk ${risk} and above, ${mode === 'Auto' ? `auto-approved up to ${risk}` : 'never auto-approved'}, ` +
      `at most ${maxTargets} targets, in the controller's own account and region.`,
    'Templated values now also refuse a leading "-", ".." and empty values (docs/security.md): check the alerts it acts on.',
  ];
  if (found.fromLastApplied)
    notes.push("The stored spec had lost spec.action (pruned by a CRD without it): read from kubectl's last-applied annotation.");
  const ssm = obj(found.action['ssm']);
  const sns = obj(found.action['sns']);
  const runbook: Runbook = {
    apiVersion: API_VERSION,
    kind: RUNBOOK.kind,
    metadata: { name: rbName, annotations: { [MIGRATED_FROM_ANNOTATION]: `${ns}/${name}` } },
    spec: {
      minRisk: risk,
      maxAutoApprovedRisk: mode === 'Auto' ? risk : 'None',
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } },
      scope: { maxTargets },
      ...(notify?.['topicArn'] !== undefined && { notifyTopics: [notify['topicArn']] }),
      action: ssm ? { ssm: ssmAction(ssm) } : { sns: pick(sns, ['topicArn', 'subject', 'message', 'messageAttributes', 'messageGroupId']) },
    } as unknown as Runbook['spec'],
  };
  const { action: _inline, ...rest } = spec;
  const annotations: Record<string, string> = { ...stored.metadata?.annotations, [CHANGED_BY_ANNOTATION]: writer };
  delete annotations[LAST_APPLIED];
  const policy: AlertPolicy = {
    apiVersion: API_VERSION,
    kind: ALERT_POLICY.kind,
    metadata: { name, namespace: ns, ...(stored.metadata?.labels && { labels: stored.metadata.labels }), annotations },
    spec: {
      ...rest,
      risk,
      runbookRef: { name: rbName },
      ...(notify && { notify: pick(notify, ['topicArn', 'on']) }),
    } as AlertPolicy['spec'],
  };
  return { runbook, policy, notes };
}

/** One YAML stream: each Runbook, then its policy, with the notes as comments. */
export function migrationYaml(migrations: readonly Migration[]): string {
  return migrations
    .map((m) =>
      [
        ...m.notes.map((n) => `# ${n}`),
        stringify(m.runbook).trimEnd(),
        '---',
        `# AlertPolicy ${m.policy.metadata?.namespace}/${m.policy.metadata?.name}: the team applies it; it is Ready once the Runbook exists.`,
        stringify(m.policy).trimEnd(),
      ].join('\n'),
    )
    .join('\n---\n')
    .concat('\n');
}

export interface MigrateCommand {
  conn: Connection;
  allNamespaces: boolean;
  name?: string;
  dir?: string;
  apply: boolean;
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

async function storedPolicies(client: Client, api: CustomObjectsApi, cmd: MigrateCommand): Promise<AlertPolicy[]> {
  const plural = ALERT_POLICY.plural;
  if (cmd.name) {
    const one = (await api
      .getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: client.namespace, plural, name: cmd.name })
      .catch((error: unknown) => {
        if (statusCode(error) === 404) throw new PluginError(`AlertPolicy ${client.namespace}/${cmd.name} not found`);
        throw error;
      })) as AlertPolicy;
    if (!needsMigration(one))
      throw new PluginError(`AlertPolicy ${client.namespace}/${cmd.name} has no inline spec.action: nothing to migrate`);
    return [one];
  }
  const list = (
    cmd.allNamespaces
      ? await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural })
      : await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: client.namespace, plural })
  ) as { items: AlertPolicy[] };
  return list.items.filter(needsMigration);
}

/** Creates the Runbook (or finds the same one), then replaces the policy on the version read. */
async function applyMigration(api: CustomObjectsApi, m: Migration, stored: AlertPolicy): Promise<string> {
  const rb = m.runbook.metadata?.name ?? '';
  try {
    await api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: RUNBOOK.plural, body: m.runbook });
  } catch (error) {
    const code = statusCode(error);
    if (code === 403)
      throw new PluginError(
        `you may not create Runbooks (${apiMessage(error)}): only cluster administrators may. Run migrate without --apply and hand the Runbook to one.`,
      );
    if (code !== 409) throw error;
    const existing = (await api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: RUNBOOK.plural, name: rb })) as Runbook;
    if (existing.metadata?.annotations?.[MIGRATED_FROM_ANNOTATION] !== m.runbook.metadata?.annotations?.[MIGRATED_FROM_ANNOTATION])
      throw new PluginError(`Runbook ${rb} already exists and was not made from this policy: nothing was changed`);
  }
  const ns = m.policy.metadata?.namespace ?? '';
  const name = m.policy.metadata?.name ?? '';
  // A replace, not a patch: spec.action must go, and a merge or apply by another field manager would keep it.
  const body = { ...m.policy, metadata: { ...stored.metadata, annotations: m.policy.metadata?.annotations } };
  await api.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ALERT_POLICY.plural, name, body });
  return `runbook.${GROUP}/${rb} created, alertpolicy.${GROUP}/${name} migrated in ${ns}`;
}

export async function runMigrate(cmd: MigrateCommand, io: Io): Promise<number> {
  const client = new Client(cmd.conn);
  const api = client.kc.makeApiClient(CustomObjectsApi);
  const policies = await storedPolicies(client, api, cmd);
  if (policies.length === 0) {
    io.err(
      `No AlertPolicies with an inline spec.action${cmd.allNamespaces ? '' : ` in ${client.namespace} namespace`}: nothing to migrate.`,
    );
    return 0;
  }
  // The policy names its writer (the admission policy checks it): whoever applies it.
  const writer = (await client.whoami()).username;
  const migrations = policies.map((p) => migratePolicy(p, writer));
  if (cmd.apply) {
    for (const [i, m] of migrations.entries()) io.out(await applyMigration(api, m, policies[i]!));
    return 0;
  }
  if (cmd.dir) {
    mkdirSync(cmd.dir, { recursive: true });
    for (const m of migrations) {
      const rb = join(cmd.dir, `runbook-${m.runbook.metadata?.name}.yaml`);
      const ap = join(cmd.dir, `alertpolicy-${m.policy.metadata?.namespace}-${m.policy.metadata?.name}.yaml`);
      writeFileSync(rb, `${m.notes.map((n) => `# ${n}`).join('\n')}\n${stringify(m.runbook)}`);
      writeFileSync(ap, stringify(m.policy));
      io.out(`wrote ${rb} (for a cluster administrator to review) and ${ap}`);
    }
    return 0;
  }
  io.out(migrationYaml(migrations).trimEnd());
  return 0;
}
