// The test bed's gateway to moto: every AWS call of an integration test goes through it.
// global-setup.ts starts one per run and publishes *its* endpoint as the test bed's
// `motoEndpoint`, so the controller under test (awsEnv), the tests' seeding and the
// tests' own fault proxies (whose upstream is `motoEndpoint`) all pass through it. It is
// a fault proxy (faultproxy.ts) with two hooks:
//
//  - check: the contract layer (contract.ts). A call that breaks a documented AWS limit
//    is answered with AWS's error and recorded as a violation. The run fails at global
//    teardown if any violation was not expected by a test (`expectContractViolation`).
//  - emulate: what moto lacks. moto 5.2.1 has no SSM DescribeInstanceInformation (it
//    answers HTTP 500 with an HTML page), so the gateway answers it from moto's EC2
//    instances: every pending or running instance has an Online Linux agent unless a
//    test says otherwise (`setAgentStatus`), and tests may register hybrid `mi-` nodes
//    (`registerManagedNode`). Nor has it CancelCommand: the gateway answers it as
//    API_CancelCommand documents (an unknown command id is InvalidCommandId; invocations
//    that ended are unchanged, so for moto's commands, all Success at once, it changes
//    nothing). And with a simulation on for a region (`setSsmSimulation`), commands sent
//    there run over time, honouring MaxConcurrency and MaxErrors, and CancelCommand
//    cancels what has not ended (ssm-simulation.ts); `ssmTimeline` gives the emulator's
//    view of them, e.g. how many invocations ran at once across every command.
//
// Test files run in jest workers, the gateway in jest's main process: they talk to it
// over HTTP, on paths under /__testbed/ that no AWS SDK ever uses.

import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { GetTopicAttributesCommand, SNSClient } from '@aws-sdk/client-sns';
import { ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { checkContract, SSM_NODE_ID, type Breach } from './contract.js';
import { startFaultProxy, type FaultProxy, type RequestView, type UpstreamAnswer } from './faultproxy.js';
import { maxRunning, runningSpan, schedule, statusAt, type SimulatedCommand, type SimulationSettings } from './ssm-simulation.js';

export interface ContractViolation {
  /** 1, 2, 3, ... in the order the gateway saw them. */
  readonly seq: number;
  readonly at: string;
  readonly service: string | undefined;
  readonly operation: string | undefined;
  /** From the request's SigV4 scope; test files use regions of their own, so this names the file. */
  readonly region: string | undefined;
  readonly code: string;
  readonly message: string;
  readonly reference: string;
  /** The expectation that covered it, if a test expected it. */
  readonly expectedBy: number | undefined;
}

/** A violation a test provokes on purpose; every field given must match. */
export interface ViolationExpectation {
  operation: string;
  code?: string;
  region?: string;
  /** A substring of the violation's message. */
  messageIncludes?: string;
}

/** How the emulated agent of one node looks; what is not given keeps its default. */
export interface AgentOverride {
  /** Online (default), ConnectionLost or Inactive. */
  pingStatus?: 'Online' | 'ConnectionLost' | 'Inactive';
  platformType?: 'Linux' | 'Windows' | 'MacOS';
  agentVersion?: string;
  /** false: no agent registered at all; the node is absent from DescribeInstanceInformation. */
  registered?: boolean;
}

export interface ManagedNodeOptions extends AgentOverride {
  /** Default: a fresh `mi-` id. */
  instanceId?: string;
  ipAddress?: string;
}

export interface Gateway {
  readonly endpoint: string;
  readonly proxy: FaultProxy;
  violations(): ContractViolation[];
  /** The violations no test expected: non-empty fails the run. */
  unexpected(): ContractViolation[];
  stop(): Promise<void>;
}

export const DEFAULT_AGENT_VERSION = '3.3.1142.0';

/** The emulator's view of the commands sent to a simulated region (`ssmTimeline`). */
export interface SsmTimeline {
  commands: Array<{
    commandId: string;
    comment: string | undefined;
    instanceIds: string[];
    maxConcurrency: string;
    maxErrors: string;
    alarm?: { name: string; ignorePollAlarmFailure: boolean };
    sentAt: number;
    cancelledAt?: number;
    /** Each invocation's status now, and when it really ran (absent: it never started). */
    invocations: Array<{ instanceId: string; status: string; ranFrom?: number; ranUntil?: number }>;
  }>;
  /** The most invocations in progress at once, across every command of the region. */
  maxRunning: number;
  maxRunningAt?: number;
}
const ADMIN_PREFIX = '/__testbed/';

interface Expectation extends ViolationExpectation {
  id: number;
  matched: number;
}

interface HybridNode {
  region: string;
  instanceId: string;
  ipAddress: string;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The caller's access key id and region from its SigV4 Authorization header. */
function signer(headers: IncomingHttpHeaders): { accessKeyId: string; region: string; sessionToken: string | undefined } | undefined {
  const m = /Credential=([^/,\s]+)\/[^/]+\/([^/]+)\//.exec(header(headers, 'authorization') ?? '');
  if (!m) return undefined;
  return { accessKeyId: m[1]!, region: m[2]!, sessionToken: header(headers, 'x-amz-security-token') };
}

function jsonAnswer(status: number, body: unknown, contentType = 'application/json'): UpstreamAnswer {
  return { status, headers: { 'content-type': contentType }, body: Buffer.from(JSON.stringify(body)) };
}

function ssmError(code: string, message: string): UpstreamAnswer {
  return {
    status: 400,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': code },
    body: Buffer.from(JSON.stringify({ __type: code, message })),
  };
}

export async function startGateway(opts: { upstream: string }): Promise<Gateway> {
  const violations: ContractViolation[] = [];
  const expectations: Expectation[] = [];
  const agents = new Map<string, AgentOverride>();
  const hybrid = new Map<string, HybridNode>();
  const simulations = new Map<string, SimulationSettings>();
  const simulated = new Map<string, SimulatedCommand>();
  let nextExpectation = 1;

  /**
   * A client that reaches moto as the caller: moto tells accounts apart by access key id
   * (STS-issued keys map to the assumed role's account) and never checks signatures, so
   * the caller's key id and session token are enough.
   */
  const asCaller = <T>(headers: IncomingHttpHeaders, make: (cfg: ConstructorParameters<typeof EC2Client>[0]) => T): T | undefined => {
    const s = signer(headers);
    if (!s) return undefined;
    return make({
      endpoint: opts.upstream,
      region: s.region,
      credentials: {
        accessKeyId: s.accessKeyId,
        secretAccessKey: 'testbed-gateway',
        ...(s.sessionToken ? { sessionToken: s.sessionToken } : {}),
      },
      maxAttempts: 1,
    });
  };

  const record = (req: RequestView, breach: Breach): void => {
    const region = signer(req.headers)?.region;
    let expectedBy: number | undefined;
    for (let i = expectations.length - 1; i >= 0; i--) {
      const e = expectations[i]!;
      if (e.operation !== req.operation) continue;
      if (e.code !== undefined && e.code !== breach.code) continue;
      if (e.region !== undefined && e.region !== region) continue;
      if (e.messageIncludes !== undefined && !breach.message.includes(e.messageIncludes)) continue;
      e.matched++;
      expectedBy = e.id;
      break;
    }
    violations.push({
      seq: violations.length + 1,
      at: new Date().toISOString(),
      service: req.service,
      operation: req.operation,
      region,
      code: breach.code,
      message: breach.message,
      reference: breach.reference,
      expectedBy,
    });
    if (expectedBy === undefined) {
      // Said at once too, so the log shows it next to the test that caused it.
      const what = `${req.service}:${req.operation} (${region})`;
      process.stderr.write(`\ncontract layer: ${what} broke an AWS limit: ${breach.code}: ${breach.message} [${breach.reference}]\n`);
    }
  };

  const check = async (req: RequestView) => {
    const breach = await checkContract(req, {
      fifoContentBasedDeduplication: async (topicArn) => {
        const sns = asCaller(req.headers, (cfg) => new SNSClient(cfg!));
        if (!sns) return false;
        try {
          const out = await sns.send(new GetTopicAttributesCommand({ TopicArn: topicArn }));
          return out.Attributes?.['ContentBasedDeduplication'] === 'true';
        } catch {
          // No such topic: let moto answer NotFound as AWS would.
          return true;
        } finally {
          sns.destroy();
        }
      },
    });
    if (!breach) return undefined;
    record(req, breach);
    return { code: breach.code, message: breach.message, status: breach.status };
  };

  // -------------------------------------------------------------------------------------
  // DescribeInstanceInformation, emulated

  const ec2Instances = async (headers: IncomingHttpHeaders): Promise<Instance[]> => {
    const ec2 = asCaller(headers, (cfg) => new EC2Client(cfg!));
    if (!ec2) return [];
    try {
      const out: Instance[] = [];
      let token: string | undefined;
      do {
        // The API "does not return information for nodes that are either Stopped or Terminated".
        const page = await ec2.send(
          new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running'] }], NextToken: token }),
        );
        for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
        token = page.NextToken;
      } while (token);
      return out;
    } finally {
      ec2.destroy();
    }
  };

  interface NodeInfo {
    InstanceId: string;
    PingStatus: string;
    LastPingDateTime: number;
    AgentVersion: string;
    IsLatestVersion: boolean;
    PlatformType: string;
    PlatformName: string;
    PlatformVersion: string;
    ResourceType: string;
    IPAddress?: string;
    tags: Record<string, string>;
  }

  const describeInstanceInformation = async (req: RequestView): Promise<UpstreamAnswer> => {
    const input = (req.input ?? {}) as {
      InstanceInformationFilterList?: Array<{ key?: string; valueSet?: string[] }>;
      Filters?: Array<{ Key?: string; Values?: string[] }>;
      MaxResults?: number;
      NextToken?: string;
    };
    const region = signer(req.headers)?.region;
    const now = Math.floor(Date.now() / 1000);
    const nodes: NodeInfo[] = [];
    for (const inst of await ec2Instances(req.headers)) {
      const id = inst.InstanceId ?? '';
      const o = agents.get(id) ?? {};
      if (o.registered === false) continue;
      const platformType = o.platformType ?? (String(inst.Platform ?? '').toLowerCase() === 'windows' ? 'Windows' : 'Linux');
      nodes.push({
        InstanceId: id,
        PingStatus: o.pingStatus ?? 'Online',
        LastPingDateTime: o.pingStatus && o.pingStatus !== 'Online' ? now - 3600 : now,
        AgentVersion: o.agentVersion ?? DEFAULT_AGENT_VERSION,
        IsLatestVersion: (o.agentVersion ?? DEFAULT_AGENT_VERSION) === DEFAULT_AGENT_VERSION,
        PlatformType: platformType,
        PlatformName: platformType === 'Windows' ? 'Microsoft Windows Server 2022 Datacenter' : 'Amazon Linux',
        PlatformVersion: platformType === 'Windows' ? '10.0.20348' : '2023',
        ResourceType: 'EC2Instance',
        ...(inst.PrivateIpAddress ? { IPAddress: inst.PrivateIpAddress } : {}),
        tags: Object.fromEntries((inst.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
      });
    }
    for (const h of hybrid.values()) {
      if (h.region !== region) continue;
      const o = agents.get(h.instanceId) ?? {};
      if (o.registered === false) continue;
      nodes.push({
        InstanceId: h.instanceId,
        PingStatus: o.pingStatus ?? 'Online',
        LastPingDateTime: o.pingStatus && o.pingStatus !== 'Online' ? now - 3600 : now,
        AgentVersion: o.agentVersion ?? DEFAULT_AGENT_VERSION,
        IsLatestVersion: (o.agentVersion ?? DEFAULT_AGENT_VERSION) === DEFAULT_AGENT_VERSION,
        PlatformType: o.platformType ?? 'Linux',
        PlatformName: 'Ubuntu',
        PlatformVersion: '24.04',
        ResourceType: 'ManagedInstance',
        IPAddress: h.ipAddress,
        tags: {},
      });
    }
    // Both filter forms, as SSM reads them: filters AND together, the values of one OR.
    const filters: Array<{ key: string; values: string[] }> = [
      ...(input.InstanceInformationFilterList ?? []).map((f) => ({ key: f.key ?? '', values: f.valueSet ?? [] })),
      ...(input.Filters ?? []).map((f) => ({ key: f.Key ?? '', values: f.Values ?? [] })),
    ];
    for (const f of filters) {
      if (f.key === 'InstanceIds') {
        // The reference: a node id "that isn't valid" is an error. Well-formed ids the
        // emulation does not know (no agent, stopped, another account) are simply absent.
        const bad = f.values.find((v) => !SSM_NODE_ID.test(v));
        if (bad !== undefined) return ssmError('InvalidInstanceId', `Instance Id ${bad} is not valid`);
      } else if (!['PingStatus', 'PlatformTypes', 'ResourceType', 'AgentVersion', 'tag-key'].includes(f.key) && !f.key.startsWith('tag:')) {
        return ssmError('InvalidFilterKey', `The filter key ${f.key} is not supported by the test bed's DescribeInstanceInformation`);
      }
    }
    const keep = (n: NodeInfo): boolean =>
      filters.every((f) => {
        switch (f.key) {
          case 'InstanceIds':
            return f.values.includes(n.InstanceId);
          case 'PingStatus':
            return f.values.includes(n.PingStatus);
          case 'PlatformTypes':
            return f.values.includes(n.PlatformType);
          case 'ResourceType':
            return f.values.includes(n.ResourceType);
          case 'AgentVersion':
            return f.values.includes(n.AgentVersion);
          case 'tag-key':
            return f.values.some((k) => k in n.tags);
          default:
            return f.values.includes(n.tags[f.key.slice('tag:'.length)] ?? '\u0000');
        }
      });
    const all = nodes.filter(keep).sort((a, b) => a.InstanceId.localeCompare(b.InstanceId));
    // Paginated as SSM does: MaxResults (5-50, checked by the contract layer) per page.
    const pageSize = input.MaxResults ?? 50;
    const start = input.NextToken ? Number(Buffer.from(input.NextToken, 'base64url').toString()) : 0;
    const page = all.slice(start, start + pageSize).map(({ tags: _tags, ...info }) => info);
    const next = start + pageSize < all.length ? Buffer.from(String(start + pageSize)).toString('base64url') : undefined;
    return jsonAnswer(200, { InstanceInformationList: page, ...(next ? { NextToken: next } : {}) }, 'application/x-amz-json-1.1');
  };

  // -------------------------------------------------------------------------------------
  // SSM over time (ssm-simulation.ts), and CancelCommand

  /** Sends the request on to moto as it came (moto checks no signature). */
  const passThrough = async (req: RequestView): Promise<UpstreamAnswer> => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || ['host', 'content-length', 'content-encoding', 'connection', 'transfer-encoding'].includes(k)) continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const res = await fetch(`${opts.upstream}${req.path}`, { method: req.method, headers, body: req.body });
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: { 'content-type': res.headers.get('content-type') ?? 'application/x-amz-json-1.1' }, body };
  };

  const sendCommand = async (req: RequestView, region: string, settings: SimulationSettings): Promise<UpstreamAnswer> => {
    const answer = await passThrough(req);
    if (answer.status !== 200) return answer;
    const input = (req.input ?? {}) as {
      InstanceIds?: string[];
      Comment?: string;
      MaxConcurrency?: string;
      MaxErrors?: string;
      AlarmConfiguration?: { Alarms?: Array<{ Name?: string }>; IgnorePollAlarmFailure?: boolean };
    };
    const out = JSON.parse(answer.body.toString('utf8')) as { Command?: { CommandId?: string } };
    const commandId = out.Command?.CommandId;
    if (!commandId) return answer;
    const sentAt = Date.now();
    const instanceIds = input.InstanceIds ?? [];
    // SendCommand's defaults (API_SendCommand): MaxConcurrency 50, MaxErrors 0.
    const maxConcurrency = input.MaxConcurrency ?? '50';
    const maxErrors = input.MaxErrors ?? '0';
    const alarm = input.AlarmConfiguration?.Alarms?.[0]?.Name;
    simulated.set(commandId, {
      commandId,
      comment: input.Comment,
      region,
      instanceIds,
      maxConcurrency,
      maxErrors,
      ...(alarm !== undefined && {
        alarm: { name: alarm, ignorePollAlarmFailure: input.AlarmConfiguration?.IgnorePollAlarmFailure ?? false },
      }),
      sentAt,
      invocations: schedule(instanceIds, maxConcurrency, maxErrors, sentAt, settings),
      cancellingMs: settings.cancellingMs ?? 200,
    });
    return answer;
  };

  const getCommandInvocation = async (req: RequestView, cmd: SimulatedCommand): Promise<UpstreamAnswer> => {
    const input = (req.input ?? {}) as { InstanceId?: string };
    const inv = cmd.invocations.find((i) => i.instanceId === input.InstanceId);
    if (!inv) return ssmError('InvocationDoesNotExist', 'An error occurred (InvocationDoesNotExist)');
    const answer = await passThrough(req);
    const body = answer.status === 200 ? (JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>) : {};
    const { status, responseCode } = statusAt(cmd, inv, Date.now());
    return jsonAnswer(
      200,
      {
        ...body,
        CommandId: cmd.commandId,
        InstanceId: inv.instanceId,
        Status: status,
        StatusDetails: status,
        ResponseCode: responseCode,
        StandardOutputContent: status === 'Success' ? 'ok\n' : '',
        StandardErrorContent: status === 'Failed' ? 'simulated failure\n' : '',
      },
      'application/x-amz-json-1.1',
    );
  };

  const cancelCommand = async (req: RequestView): Promise<UpstreamAnswer> => {
    const input = (req.input ?? {}) as { CommandId?: string; InstanceIds?: string[] };
    const commandId = input.CommandId ?? '';
    const cmd = simulated.get(commandId);
    if (cmd) {
      // Cancelling twice keeps the first cancel: what had ended by then stays as it was.
      cmd.cancelledAt ??= Date.now();
      return jsonAnswer(200, {}, 'application/x-amz-json-1.1');
    }
    // moto's own commands: every invocation ended (Success) at once, so a cancel changes nothing — if the command exists.
    const ssm = asCaller(req.headers, (cfg) => new SSMClient(cfg!));
    if (!ssm) return ssmError('InvalidCommandId', 'The command ID is not valid');
    try {
      const out = await ssm.send(new ListCommandsCommand({ CommandId: commandId }));
      if ((out.Commands ?? []).length === 0) return ssmError('InvalidCommandId', 'The command ID is not valid');
    } catch {
      return ssmError('InvalidCommandId', 'The command ID is not valid');
    } finally {
      ssm.destroy();
    }
    return jsonAnswer(200, {}, 'application/x-amz-json-1.1');
  };

  const timeline = (region: string): SsmTimeline => {
    const now = Date.now();
    const commands = [...simulated.values()].filter((c) => c.region === region);
    const peak = maxRunning(commands);
    return {
      commands: commands.map((c) => ({
        commandId: c.commandId,
        comment: c.comment,
        instanceIds: c.instanceIds,
        maxConcurrency: c.maxConcurrency,
        maxErrors: c.maxErrors,
        ...(c.alarm && { alarm: c.alarm }),
        sentAt: c.sentAt,
        ...(c.cancelledAt !== undefined && { cancelledAt: c.cancelledAt }),
        invocations: c.invocations.map((i) => {
          const span = runningSpan(c, i);
          return {
            instanceId: i.instanceId,
            status: statusAt(c, i, now).status,
            ...(span && { ranFrom: span[0], ranUntil: span[1] }),
          };
        }),
      })),
      maxRunning: peak.max,
      ...(peak.at !== undefined && { maxRunningAt: peak.at }),
    };
  };

  // -------------------------------------------------------------------------------------
  // The admin API for test files

  const admin = (req: RequestView): UpstreamAnswer => {
    const path = req.path.split('?')[0]!.slice(ADMIN_PREFIX.length);
    let body: Record<string, unknown> = {};
    try {
      body = req.body ? (JSON.parse(req.body) as Record<string, unknown>) : {};
    } catch {
      return jsonAnswer(400, { error: 'body must be JSON' });
    }
    if (req.method === 'GET' && path === 'contract/violations') return jsonAnswer(200, violations);
    if (req.method === 'POST' && path === 'contract/expectations') {
      if (typeof body['operation'] !== 'string') return jsonAnswer(400, { error: 'operation is required' });
      const e: Expectation = { ...(body as unknown as ViolationExpectation), id: nextExpectation++, matched: 0 };
      expectations.push(e);
      return jsonAnswer(200, { id: e.id });
    }
    const exp = /^contract\/expectations\/(\d+)$/.exec(path);
    if (req.method === 'DELETE' && exp) {
      const i = expectations.findIndex((e) => e.id === Number(exp[1]));
      if (i < 0) return jsonAnswer(404, { error: 'no such expectation' });
      const [e] = expectations.splice(i, 1);
      return jsonAnswer(
        200,
        violations.filter((v) => v.expectedBy === e!.id),
      );
    }
    const agent = /^ssm\/agents\/([^/]+)$/.exec(path);
    if (req.method === 'PUT' && agent) {
      agents.set(decodeURIComponent(agent[1]!), body as AgentOverride);
      return jsonAnswer(200, {});
    }
    const sim = /^ssm\/simulation\/([a-z0-9-]+)$/.exec(path);
    if (sim && req.method === 'PUT') {
      if (typeof body['runMs'] !== 'number') return jsonAnswer(400, { error: 'runMs (a number) is required' });
      simulations.set(sim[1]!, body as unknown as SimulationSettings);
      return jsonAnswer(200, {});
    }
    if (sim && req.method === 'DELETE') {
      simulations.delete(sim[1]!);
      for (const [id, c] of simulated) if (c.region === sim[1]) simulated.delete(id);
      return jsonAnswer(200, {});
    }
    if (sim && req.method === 'GET') return jsonAnswer(200, timeline(sim[1]!));
    if (req.method === 'POST' && path === 'ssm/managed-nodes') {
      const region = body['region'];
      if (typeof region !== 'string') return jsonAnswer(400, { error: 'region is required' });
      const o = body as unknown as ManagedNodeOptions & { region: string };
      const instanceId = o.instanceId ?? `mi-${randomBytes(9).toString('hex').slice(0, 17)}`;
      hybrid.set(instanceId, { region, instanceId, ipAddress: o.ipAddress ?? '10.20.0.10' });
      const { instanceId: _id, ipAddress: _ip, region: _r, ...override } = o;
      agents.set(instanceId, override);
      return jsonAnswer(200, { instanceId });
    }
    return jsonAnswer(404, { error: `no such test bed endpoint: ${req.method} ${req.path}` });
  };

  const emulate = async (req: RequestView): Promise<UpstreamAnswer | undefined> => {
    if (req.path.startsWith(ADMIN_PREFIX)) return admin(req);
    if (req.path === '/moto-api/reset') {
      // moto forgets its instances; the agents the test bed made up go with them.
      agents.clear();
      hybrid.clear();
      simulated.clear();
      return undefined;
    }
    if (req.service === 'ssm' && req.operation === 'DescribeInstanceInformation') return describeInstanceInformation(req);
    if (req.service === 'ssm' && req.operation === 'CancelCommand') return cancelCommand(req);
    const region = signer(req.headers)?.region;
    const settings = region === undefined ? undefined : simulations.get(region);
    if (req.service === 'ssm' && req.operation === 'SendCommand' && settings && region) return sendCommand(req, region, settings);
    if (req.service === 'ssm' && req.operation === 'GetCommandInvocation') {
      const cmd = simulated.get(String((req.input as { CommandId?: unknown } | undefined)?.CommandId ?? ''));
      if (cmd) return getCommandInvocation(req, cmd);
    }
    return undefined;
  };

  const proxy = await startFaultProxy({ upstream: opts.upstream, check, emulate });
  return {
    endpoint: proxy.endpoint,
    proxy,
    violations: () => [...violations],
    unexpected: () => violations.filter((v) => v.expectedBy === undefined),
    stop: () => proxy.stop(),
  };
}

// ---------------------------------------------------------------------------------------
// Helpers for test files (they run in other processes: HTTP to the gateway)

async function adminCall<T>(endpoint: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${endpoint}${ADMIN_PREFIX}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(
      `test bed gateway ${method} ${path}: HTTP ${res.status} ${text} (is ${endpoint} the gateway, i.e. testbedFromEnv().motoEndpoint?)`,
    );
  }
  return JSON.parse(text) as T;
}

/** Every violation the gateway has recorded in this run (expected ones included). */
export function contractViolations(endpoint: string): Promise<ContractViolation[]> {
  return adminCall(endpoint, 'GET', 'contract/violations');
}

/**
 * Fails if the gateway recorded a violation nobody expected in `region` (every region if
 * none is given) since `since` (default: ever). For an `afterAll`, so the failure lands
 * on the file that caused it rather than only at the end of the run.
 */
export async function assertNoContractViolations(endpoint: string, opts: { region?: string; since?: Date } = {}): Promise<void> {
  const bad = (await contractViolations(endpoint)).filter(
    (v) =>
      v.expectedBy === undefined &&
      (opts.region === undefined || v.region === opts.region) &&
      (opts.since === undefined || new Date(v.at) >= opts.since),
  );
  if (bad.length > 0) throw new Error(`AWS contract violations (calls real AWS would refuse):\n${formatViolations(bad)}`);
}

export interface ExpectedViolation {
  /** Stops expecting; returns the violations it covered. */
  settle(): Promise<ContractViolation[]>;
}

/** Declares that the test is about to break `exp` on purpose: matching violations do not fail the run. */
export async function expectContractViolation(endpoint: string, exp: ViolationExpectation): Promise<ExpectedViolation> {
  const { id } = await adminCall<{ id: number }>(endpoint, 'POST', 'contract/expectations', exp);
  return { settle: () => adminCall(endpoint, 'DELETE', `contract/expectations/${id}`) };
}

/** Sets how the emulated SSM agent of `instanceId` looks to DescribeInstanceInformation. */
export async function setAgentStatus(endpoint: string, instanceId: string, override: AgentOverride): Promise<void> {
  await adminCall(endpoint, 'PUT', `ssm/agents/${encodeURIComponent(instanceId)}`, override);
}

/** Registers a hybrid managed node (an `mi-` id, as SSM gives on-premises servers) in `region`; returns its id. */
export async function registerManagedNode(endpoint: string, region: string, opts: ManagedNodeOptions = {}): Promise<string> {
  return (await adminCall<{ instanceId: string }>(endpoint, 'POST', 'ssm/managed-nodes', { ...opts, region })).instanceId;
}

/**
 * Runs SSM commands sent in `region` over time from now on (ssm-simulation.ts): each
 * invocation takes `runMs`, MaxConcurrency and MaxErrors hold per command, `failing`
 * instances fail, and CancelCommand cancels what has not ended.
 */
export async function setSsmSimulation(endpoint: string, region: string, settings: SimulationSettings): Promise<void> {
  await adminCall(endpoint, 'PUT', `ssm/simulation/${region}`, settings);
}

/** Stops simulating `region` and forgets its commands. */
export async function clearSsmSimulation(endpoint: string, region: string): Promise<void> {
  await adminCall(endpoint, 'DELETE', `ssm/simulation/${region}`);
}

/** The emulator's view of every command sent to simulated `region`. */
export function ssmTimeline(endpoint: string, region: string): Promise<SsmTimeline> {
  return adminCall(endpoint, 'GET', `ssm/simulation/${region}`);
}

export function formatViolations(list: readonly ContractViolation[]): string {
  return list
    .map((v) => `  #${v.seq} ${v.at} ${v.service}:${v.operation} in ${v.region ?? '?'}: ${v.code}: ${v.message}\n      see ${v.reference}`)
    .join('\n');
}
