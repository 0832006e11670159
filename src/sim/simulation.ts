/**
 * A deterministic simulation of the request controller (in the manner of FoundationDB's
 * simulation and TigerBeetle's VOPR): the REAL RemediationRequestReconciler, several
 * processes of it in turn (crashes, leader changes), against the fakes of src/fakes — an
 * API server whose watch lags, whose history is compacted, whose answers are lost or
 * refused with 409 — and an AWS whose answers are lost, throttled, slow, or AccessDenied
 * (transient), whose ListCommands lags SendCommand. One seeded PRNG picks every step:
 * which call is answered and how, which watch event arrives, when the clock moves, when
 * a process dies. Nothing else is asynchronous (every fake answers through the gate, the
 * clock is virtual), so a seed replays exactly: `SEED=<n> npm run simulate`.
 *
 * After every step it checks the invariants of the execution engine
 * (src/controllers/request/engine.ts):
 *   - each SSM command (chunk) is accepted by SSM at most once, each runbook message and
 *     each notification delivered at most once;
 *   - status says what went out: a command id in status is a command SSM accepted with
 *     that comment, a command marked refused (and its NotSent instances) was never
 *     accepted, a message id is a delivered message, and a request that ended records
 *     every command SSM accepted for it;
 *   - nothing is sent for a request that is in an end phase;
 * and once the faults stop and the world settles:
 *   - every request reached an end phase, and was settled (its execution finalizer gone);
 * and when anything reaches AWS for a request, the stored ledger already holds it.
 *
 */
import { pino } from 'pino';
import { END_PHASES, EXECUTION_FINALIZER, type AlertPolicy, type RemediationRequestStatus, type Runbook } from '../api/v1alpha1/index.js';
import type { ExecutionLedger } from '../controllers/ledger.js';
import type { RemediationRequestReconciler } from '../controllers/request/reconciler.js';
import { NOT_SENT } from '../controllers/request/ssm.js';
import { FakeSns, FakeSsm, throttled } from '../fakes/aws.js';
import { type Call, FakeApiServer, type FakeCache, LostResponseError } from '../fakes/cluster.js';
import {
  FAKE_NS as NS,
  FLEET_TAGS,
  FakeController,
  catalog,
  createRequest,
  instanceIds,
  type RequestKind,
  uidOf,
} from '../fakes/controller.js';
import { MemoryLedgerStorage } from '../fakes/ledger-memory.js';

/** A small, fast, seedable PRNG (mulberry32): the only source of choice in a run. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

export interface SimOptions {
  seed: number;
  /** Steps with faults; then the faults stop and the world is given time to settle. */
  steps?: number;
  /** Keep the whole trace (else the last `traceTail` lines). */
  traceTail?: number;
  /** Turn fault kinds off (to show which ones a defect needs). */
  faults?: Partial<Record<FaultKind, boolean>>;
  /** The kinds of request to create (default: all five). */
  kinds?: ReadonlyArray<RequestKind>;
}

export type FaultKind =
  | 'watchLag'
  | 'lostResponse'
  | 'conflict'
  | 'apiRestart'
  | 'compaction'
  | 'crash'
  | 'throttle'
  | 'accessDenied'
  | 'listLag'
  | 'slow';

export interface SimResult {
  seed: number;
  steps: number;
  /** Virtual time the run covered. */
  virtualMs: number;
  violation?: string;
  trace: string[];
  stats: { commands: number; messages: number; crashes: number; requests: number };
  /** How many times each kind of event happened. */
  explored: Record<string, number>;
  /** How many requests ended in each phase (and reason). */
  ends: Record<string, number>;
}

const START = Date.parse('2026-11-23T12:00:00Z');
const silent = pino({ level: 'silent' });
const ended = (phase: string | undefined): boolean => phase !== undefined && (END_PHASES as ReadonlySet<string>).has(phase);

const oneLine = (error: unknown): string =>
  String((error as Error)?.message ?? error)
    .split('\n')[0]!
    .slice(0, 140);

interface Pending {
  id: number;
  call: Call<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  proc: Proc | undefined;
  kind: 'kube' | 'aws';
  /** Not answered before this time (a slow answer). */
  notBefore: number;
}

/** The work queue's rules (client-go's): a key is processed by one worker at a time; added while processing, it is processed again after. */
class SimQueue {
  readonly queue: string[] = [];
  readonly dirty = new Set<string>();
  readonly processing = new Set<string>();
  readonly failures = new Map<string, number>();
  add(key: string): void {
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    if (!this.processing.has(key)) this.queue.push(key);
  }
  get(): string | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.processing.add(key);
    this.dirty.delete(key);
    return key;
  }
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) this.queue.push(key);
  }
}

interface Proc {
  name: string;
  alive: boolean;
  cache: FakeCache;
  queue: SimQueue;
  reconciler: RemediationRequestReconciler;
  ledger: ExecutionLedger;
  busy: number;
}

interface Timer {
  at: number;
  seq: number;
  label: string;
  fire(): void;
}

class Violation extends Error {}

/** One run of the simulation for one seed. */
export class Simulation {
  readonly rng: Prng;
  now = START;
  readonly clock = { now: () => this.now };
  readonly server = new FakeApiServer();
  readonly ssm = new FakeSsm(this.clock);
  readonly sns = new FakeSns(this.clock);
  readonly storage = new MemoryLedgerStorage();
  private readonly pending: Pending[] = [];
  private readonly timers: Timer[] = [];
  private seq = 0;
  private procs: Proc[] = [];
  private procCount = 0;
  private faulting = true;
  private crashes = 0;
  private stepNo = 0;
  readonly trace: string[] = [];
  private readonly tail: number;
  private readonly faults: Record<FaultKind, boolean>;
  /** Every request created: uid → key, and what it is. */
  readonly requests = new Map<string, { key: string; kind: RequestKind }>();
  /** The last phase the server stored per uid (requests are deleted by retention). */
  readonly lastPhase = new Map<string, string>();
  readonly policies = new Map<string, AlertPolicy>();
  readonly runbooks = new Map<string, Runbook>();
  readonly fleet = { ids: instanceIds('f', 60), tags: FLEET_TAGS };

  constructor(readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed);
    this.tail = opts.traceTail ?? 400;
    const all: FaultKind[] = [
      'watchLag',
      'lostResponse',
      'conflict',
      'apiRestart',
      'compaction',
      'crash',
      'throttle',
      'accessDenied',
      'listLag',
      'slow',
    ];
    this.faults = Object.fromEntries(all.map((k) => [k, opts.faults?.[k] ?? true])) as Record<FaultKind, boolean>;
    const gate = (kind: 'kube' | 'aws') =>
      (<T>(call: Call<T>): Promise<T> =>
        new Promise<T>((resolve, reject) => {
          // Polls are answered at once: they change nothing, and a fleet's 60 of them would crowd out the steps that matter.
          if (call.label.startsWith('GetCommandInvocation')) {
            try {
              resolve(call.apply());
            } catch (error) {
              reject(error);
            }
            return;
          }
          const proc = this.procs.find((p) => p.name === call.caller);
          const slow = kind === 'aws' && call.mutates && this.on('slow') && this.rng.chance(0.15);
          if (slow) this.count('slowAnswer');
          this.pending.push({
            id: ++this.seq,
            call: call as Call<unknown>,
            resolve: resolve as (v: unknown) => void,
            reject,
            proc,
            kind,
            notBefore: slow ? this.now + 1_500 : this.now,
          });
        })) as never;
    this.server.gate = gate('kube');
    this.ssm.gate = gate('aws');
    this.sns.gate = gate('aws');
    this.ssm.listLagMs = this.on('listLag') ? this.rng.pick([0, 200, 2_000]) : 0;
    this.ssm.runMs = this.rng.pick([0, 500, 3_000]);
    this.server.onChange = (_before, after) => {
      if (after?.metadata?.uid && after.status?.phase) this.lastPhase.set(after.metadata.uid, after.status.phase);
    };
    this.world();
  }

  private on(kind: FaultKind): boolean {
    return this.faulting && this.faults[kind];
  }

  /** How many times each kind of event happened in this run (what the closing note reports). */
  readonly explored: Record<string, number> = {};
  private count(kind: string): void {
    this.explored[kind] = (this.explored[kind] ?? 0) + 1;
  }

  private log(line: string): void {
    this.trace.push(`#${this.stepNo} t+${this.now - START}ms ${line}`);
    if (this.trace.length > this.tail * 2) this.trace.splice(0, this.trace.length - this.tail);
  }

  /** Policies, runbooks and the requests of this run (how many of each kind is the seed's choice). */
  private world(): void {
    // Half the seeds announce on a notify topic; of those, a few are not granted it (the
    // trust rule: the runbook's notifyTopics), whose requests all end NotifyTopicNotGranted.
    const notify = this.rng.chance(0.5);
    const { policies, runbooks } = catalog({ notify, grantNotify: !this.rng.chance(0.05) });
    for (const [k, v] of policies) this.policies.set(k, v);
    for (const [k, v] of runbooks) this.runbooks.set(k, v);
    const kinds = this.opts.kinds ?? (['ssm', 'fleet', 'sns', 'fifo', 'rollout'] as const);
    const n = 2 + this.rng.int(5);
    for (let i = 0; i < n; i++) {
      const kind = this.rng.pick(kinds);
      const at = this.rng.int(2_000);
      this.timer(at, `create r${i} (${kind})`, () => this.createRequest(i, kind));
    }
    this.startProc();
  }

  private createRequest(i: number, kind: RequestKind): void {
    const key = createRequest(this.server, i, kind);
    const uid = uidOf(i);
    this.requests.set(uid, { key, kind });
    if (kind === 'fleet' && this.on('accessDenied') && this.rng.chance(0.6)) {
      // AccessDenied on the second command, transient (the IAM policy was fixed) or not.
      const transient = this.rng.chance(0.7);
      this.ssm.refusals.set(`remediator:${uid}/1`, transient ? ['AccessDenied'] : ['AccessDenied', 'AccessDenied', 'AccessDenied']);
      this.count('accessDeniedArmed');
      this.log(`AccessDenied armed for r${i}/1 (${transient ? 'transient' : 'lasting'})`);
    }
  }

  private timer(delay: number, label: string, fire: () => void): void {
    this.timers.push({ at: this.now + delay, seq: ++this.seq, label, fire });
  }

  private startProc(): void {
    const name = `p${++this.procCount}`;
    const queue = new SimQueue();
    const c = new FakeController(name, this);
    const proc: Proc = { name, alive: true, cache: c.cache, queue, reconciler: c.reconciler, ledger: c.ledger, busy: 0 };
    const enqueue = c.cache.onEvent;
    c.cache.onEvent = (type, object) => {
      if (!proc.alive) return;
      enqueue(type, object);
      queue.add(`${object.metadata?.namespace}/${object.metadata?.name}`);
    };
    this.procs.push(proc);
    void c.start();
    this.log(`${name} starts (leader): lists, loads the ledger`);
  }

  /** The leader dies: its calls in flight may or may not have reached their server; it never hears back. */
  private crash(proc: Proc): void {
    proc.alive = false;
    this.crashes++;
    for (const p of this.pending.filter((x) => x.proc === proc)) {
      this.pending.splice(this.pending.indexOf(p), 1);
      if (p.call.mutates && this.rng.chance(0.5)) {
        try {
          p.call.apply();
          this.log(`  ${p.call.label} by ${proc.name} reached its server as it died`);
        } catch {
          /* refused: nothing happened */
        }
      }
    }
    this.procs = this.procs.filter((p) => p !== proc);
    this.count('crash');
    this.log(`${proc.name} crashes; a new leader takes over in a moment`);
    this.timer(500 + this.rng.int(3_000), 'new leader', () => this.startProc());
  }

  /** Starts reconciles on free workers (two per process, as the controller's default concurrency). */
  private startWork(): void {
    for (const proc of this.procs) {
      while (proc.alive && proc.busy < 2) {
        const key = proc.queue.get();
        if (key === undefined) break;
        proc.busy++;
        const [namespace, name] = key.split('/') as [string, string];
        this.count('reconcile');
        this.log(`${proc.name} reconciles ${name}`);
        void proc.reconciler.reconcile({ namespace, name }, silent).then(
          (result) => {
            if (!proc.alive) return;
            proc.busy--;
            proc.queue.failures.delete(key);
            proc.queue.done(key);
            const after = result && result.requeueAfterMs;
            if (after && after > 0) this.timer(after, `${proc.name} requeue ${name}`, () => proc.alive && proc.queue.add(key));
          },
          (error: unknown) => {
            if (!proc.alive) return;
            proc.busy--;
            const n = (proc.queue.failures.get(key) ?? 0) + 1;
            proc.queue.failures.set(key, n);
            proc.queue.done(key);
            this.log(`${proc.name} reconcile ${name} failed: ${oneLine(error)}`);
            this.timer(Math.min(5 * 2 ** n, 10_000), `${proc.name} retry ${name}`, () => proc.alive && proc.queue.add(key));
          },
        );
      }
    }
  }

  /** Answers one call in flight, as the seed says: answered, refused, or taking effect with its answer lost. */
  private answer(p: Pending): void {
    this.pending.splice(this.pending.indexOf(p), 1);
    const r = this.rng.next();
    const label = `${p.call.label} by ${p.call.caller}`;
    if (p.kind === 'aws' && p.call.mutates) this.checkNotEnded(p.call.label);
    if (this.on('lostResponse') && r < 0.08) {
      // The call took effect (or was refused there); its answer never came.
      try {
        p.call.apply();
      } catch {
        /* refused; the caller cannot tell */
      }
      this.count(`lostAnswer.${p.kind}`);
      this.log(`${label}: took effect, answer LOST`);
      p.reject(new LostResponseError(p.call.label));
      return;
    }
    if (r < 0.14 && ((p.kind === 'kube' && this.on('apiRestart')) || (p.kind === 'aws' && this.on('throttle')))) {
      this.count(p.kind === 'aws' ? 'throttled' : 'unavailable');
      this.log(`${label}: refused before it took effect (${p.kind === 'aws' ? 'throttled' : '503'})`);
      p.reject(p.kind === 'aws' ? throttled() : p.call.failure());
      return;
    }
    try {
      const v = p.call.apply();
      this.log(`${label}: ok`);
      p.resolve(v);
    } catch (error) {
      this.count(/409/.test(oneLine(error)) ? 'conflict' : `refused.${p.kind}`);
      this.log(`${label}: refused: ${oneLine(error)}`);
      p.reject(error);
    }
  }

  /** A send (or publish) reaching AWS for a request that already ended is a violation. */
  private checkNotEnded(label: string): void {
    const uid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(label)?.[0];
    if (!uid || (!label.startsWith('SendCommand') && !label.startsWith('Publish runbook'))) return;
    const key = this.requests.get(uid)?.key;
    const obj = key ? this.server.objects.get(key) : undefined;
    const phase = obj?.status?.phase ?? this.lastPhase.get(uid);
    if (phase && ended(phase)) throw new Violation(`${label} reached AWS after the request ended ${phase}`);
    // The ledger (what cooldown, rate limits and the breaker count) holds every execution before anything goes out.
    const policy = obj?.spec.policyRef.name ?? '';
    if (!this.storage.docs.get(`${NS}/${policy}`)?.entries.some((e) => e.uid === uid))
      throw new Violation(`${label} reached AWS, and the stored ledger has no entry for the request`);
  }

  /** The steps one could take now, each with a weight. */
  private choices(): Array<[number, string, () => void]> {
    const out: Array<[number, string, () => void]> = [];
    const ready = this.pending.filter((p) => p.notBefore <= this.now);
    for (const p of ready) out.push([3, 'answer', () => this.answer(p)]);
    for (const proc of this.procs) {
      if (proc.alive && proc.cache.behind) {
        // A lagging watch is delivered less eagerly than calls are answered.
        out.push([this.on('watchLag') ? 1 : 50, 'deliver', () => this.deliver(proc)]);
      }
    }
    if (this.faulting) {
      if (this.on('crash') && this.crashes < 3) {
        for (const proc of this.procs) if (proc.alive) out.push([0.03, 'crash', () => this.crash(proc)]);
      }
      if (this.on('compaction'))
        out.push([0.03, 'compact', () => (this.server.compact(), this.count('compaction'), this.log('etcd compacts its history'))]);
      if (this.on('conflict') && this.requests.size > 0)
        out.push([
          0.04,
          'user',
          () => {
            const keys = [...this.server.objects.keys()];
            if (keys.length === 0) return;
            const k = this.rng.pick(keys);
            const resolves = this.rng.chance(0.2);
            const target = this.server.objects.get(k);
            if (resolves && target?.status?.phase === 'Executing' && this.rng.chance(0.5)) {
              // The intake records a resolution that reaches an Executing request in status
              // (status.alertResolvedAt, processor.ts): the controller stops it, and its own
              // status writes, racing this patch, must never drop the field (checked in check()).
              this.server.patch(k, (o) => {
                o.status = { ...o.status, alertResolvedAt: new Date(this.now).toISOString() };
              });
              this.resolvedInStatus.set(k, target.metadata?.uid ?? '');
              this.count('alertResolvedInStatus');
              this.log(`the alert of ${k} resolves while it executes (status.alertResolvedAt)`);
              return;
            }
            if (resolves) {
              // The intake records the alert's resolution: before anything was sent, the request is cancelled.
              this.server.patch(k, (o) => {
                o.spec = { ...o.spec, alert: { ...o.spec.alert, status: 'resolved' } };
              });
              this.count('alertResolved');
              this.log(`the alert of ${k} resolves (spec.alert.status)`);
              return;
            }
            this.server.patch(k, (o) => {
              o.metadata = { ...o.metadata, annotations: { ...o.metadata?.annotations, touched: String(this.now) } };
            });
            this.count('userWrite');
            this.log(`a person annotates ${k} (the controller's next write on the old version conflicts)`);
          },
        ]);
      if (this.on('apiRestart'))
        out.push([
          0.02,
          'apiserver restart',
          () => {
            this.count('apiserverRestart');
            this.log('kube-apiserver restarts: calls in flight fail, watches resume from their resourceVersion');
            for (const p of this.pending.filter((x) => x.kind === 'kube')) {
              this.pending.splice(this.pending.indexOf(p), 1);
              if (p.call.mutates && this.rng.chance(0.5)) {
                try {
                  p.call.apply();
                } catch {
                  /* refused */
                }
                p.reject(new LostResponseError(p.call.label));
              } else p.reject(p.call.failure());
            }
          },
        ]);
    }
    const idle = out.length === 0;
    out.push([idle ? 1 : 0.3, 'tick', () => this.tick(idle)]);
    return out;
  }

  private deliver(proc: Proc): void {
    this.count('watchEvent');
    proc.cache.deliver();
  }

  /** Time moves: to the next timer when nothing else can happen, else by a little. */
  private tick(idle: boolean): void {
    const next = Math.min(...this.timers.map((t) => t.at), ...this.pending.filter((p) => p.notBefore > this.now).map((p) => p.notBefore));
    const step = this.rng.int(300) + 1;
    if (idle && Number.isFinite(next)) this.now = Math.max(this.now, next);
    else this.now = Number.isFinite(next) ? Math.max(this.now, Math.min(next, this.now + step)) : this.now + step;
  }

  private fireTimers(): void {
    this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
    while (this.timers.length > 0 && this.timers[0]!.at <= this.now) {
      const t = this.timers.shift()!;
      t.fire();
    }
  }

  /** Lets every promise the last step settled run to its next await on the gate. */
  private async settle(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
  }

  /** Requests whose status the intake marked with alertResolvedAt (the controller must keep it). */
  private readonly resolvedInStatus = new Map<string, string>();

  /** No controller status write drops the resolution the intake recorded in status. */
  private checkResolutionsKept(): void {
    for (const [k, uid] of this.resolvedInStatus) {
      const rr = this.server.objects.get(k);
      if (rr?.metadata?.uid === uid && !rr.status?.alertResolvedAt)
        throw new Violation(`${k}: the controller's status write dropped status.alertResolvedAt`);
    }
  }

  /** The invariants that hold after every step. */
  private check(final: boolean): void {
    this.checkResolutionsKept();
    this.checkNoDuplicates();
    for (const [uid, { key }] of this.requests) {
      const rr = this.server.objects.get(key);
      if (!rr) continue;
      this.checkSsmRecord(uid, key, rr.status ?? {});
      this.checkSnsRecord(uid, key, rr.status ?? {});
    }
    this.checkRollouts();
    if (final) this.checkAllEnded();
  }

  /** SSM never accepted two commands with one comment; SNS never delivered one deduplication id twice. */
  private checkNoDuplicates(): void {
    const byComment = new Map<string, number>();
    for (const c of this.ssm.commands) byComment.set(c.comment, (byComment.get(c.comment) ?? 0) + 1);
    for (const [comment, n] of byComment) if (n > 1) throw new Violation(`SSM accepted ${n} commands with comment ${comment}`);
    const byDedup = new Map<string, number>();
    for (const m of this.sns.delivered) {
      const k = `${m.input.topicArn} ${m.input.deduplicationId}`;
      byDedup.set(k, (byDedup.get(k) ?? 0) + 1);
    }
    for (const [k, n] of byDedup) if (n > 1) throw new Violation(`SNS delivered ${n} messages for ${k}`);
  }

  /** What status says of SSM is what SSM holds: ids, refusals, instances not sent, and nothing unrecorded at the end. */
  private checkSsmRecord(uid: string, key: string, status: RemediationRequestStatus): void {
    const ssm = status.execution?.ssm;
    const accepted = this.ssm.sentFor(`remediator:${uid}`);
    for (const c of ssm?.commands ?? []) {
      const sent = accepted.find((a) => a.comment === c.comment);
      if (c.commandId && sent?.commandId !== c.commandId)
        throw new Violation(`${key}: status records ${c.comment} as ${c.commandId}, SSM has ${sent?.commandId ?? 'nothing'}`);
      if (c.refused && sent) throw new Violation(`${key}: status says ${c.comment} was refused (not sent), SSM accepted ${sent.commandId}`);
    }
    for (const inv of ssm?.invocations ?? []) {
      if (inv.status !== NOT_SENT) continue;
      const cmd = accepted.find((a) => a.input.instanceIds.includes(inv.instanceId));
      if (cmd) throw new Violation(`${key}: status says ${inv.instanceId} was NotSent, SSM sent it ${cmd.commandId} (${cmd.comment})`);
    }
    const phase = status.phase ?? 'Pending';
    if (!ended(phase) || !ssm || status.execution?.dryRun) return;
    for (const a of accepted) {
      if (!ssm.commands?.some((c) => c.commandId === a.commandId))
        throw new Violation(`${key}: ended ${phase}, but SSM accepted ${a.commandId} (${a.comment}) that status does not record`);
    }
  }

  /** What status says of SNS (the runbook's message and the notifications) is what SNS delivered. */
  private checkSnsRecord(uid: string, key: string, status: RemediationRequestStatus): void {
    const sns = status.execution?.sns;
    if (sns?.messageId && !this.sns.delivered.some((m) => m.messageId === sns.messageId && m.input.deduplicationId === uid))
      throw new Violation(`${key}: status records message ${sns.messageId}, SNS delivered no such message for it`);
    if (status.phase === 'Succeeded' && sns && !sns.messageId) throw new Violation(`${key}: Succeeded without a message id`);
    for (const n of status.notifications ?? []) {
      if (n.messageId && !this.sns.delivered.some((m) => m.messageId === n.messageId))
        throw new Violation(`${key}: notification ${n.phase} records ${n.messageId}, SNS has no such message`);
    }
  }

  /** At the end of a run: every request reached an end phase and let go of the execution finalizer. */
  private checkAllEnded(): void {
    for (const [uid, { key }] of this.requests) {
      const phase = this.lastPhase.get(uid);
      if (!phase || !ended(phase)) throw new Violation(`${key} never reached an end phase (last: ${phase ?? 'none'})`);
      const rr = this.server.objects.get(key);
      if (rr?.metadata?.finalizers?.includes(EXECUTION_FINALIZER))
        throw new Violation(`${key} ended but still holds the execution finalizer`);
    }
  }

  /** When each request's stored status first recorded its rollout's stop (sim time). */
  private readonly stopSeen = new Map<string, number>();

  /**
   * The rollout's invariants (src/controllers/request/rollout.ts), for every request whose
   * status records waves: a command of wave w+1 is accepted only after every command of
   * wave w was accepted, its invocations ended and the pause passed; nothing is accepted
   * after the stop was stored; a CancelCommand goes only to a command of a request whose
   * stored status records its stop.
   */
  private checkRollouts(): void {
    for (const [uid, { key }] of this.requests) {
      const ssm = this.server.objects.get(key)?.status?.execution?.ssm;
      const rollout = ssm?.rollout;
      if (!ssm?.commands || !rollout) continue;
      if (rollout.stopped && !this.stopSeen.has(uid)) this.stopSeen.set(uid, this.now);
      const accepted = this.ssm.sentFor(`remediator:${uid}`);
      const waveOf = new Map(ssm.commands.map((c) => [c.comment, c.wave ?? 0]));
      const pauseMs = 1_000;
      for (const a of accepted) {
        const w = waveOf.get(a.comment) ?? 0;
        if (w > 0) {
          const before = ssm.commands.filter((c) => (c.wave ?? 0) === w - 1);
          for (const c of before) {
            const sent = accepted.find((x) => x.comment === c.comment);
            if (!sent) throw new Violation(`${key}: ${a.comment} (wave ${w + 1}) accepted before ${c.comment} (wave ${w}) was sent`);
            const end = this.ssm.endOf(sent).at;
            if (a.at < end + pauseMs)
              throw new Violation(
                `${key}: ${a.comment} (wave ${w + 1}) accepted at ${a.at - end} ms after wave ${w} ended, before its pause`,
              );
          }
        }
        const stop = this.stopSeen.get(uid);
        if (stop !== undefined && a.at > stop) throw new Violation(`${key}: ${a.comment} accepted after the rollout's stop was stored`);
      }
      for (const c of this.ssm.cancels) {
        if (!accepted.some((a) => a.commandId === c.commandId)) continue;
        const stop = this.stopSeen.get(uid);
        if (stop === undefined || c.at < stop) throw new Violation(`${key}: CancelCommand ${c.commandId} before the stop was stored`);
      }
    }
  }

  /** Runs the seed: `steps` steps with faults, then up to as many without, until the world is quiet. */
  async run(): Promise<SimResult> {
    const steps = this.opts.steps ?? 600;
    let violation: string | undefined;
    try {
      await this.settle();
      for (this.stepNo = 1; this.stepNo <= steps * 8; this.stepNo++) {
        if (this.stepNo === steps) {
          this.faulting = false;
          this.log('faults stop; the world settles');
          if (!this.procs.some((p) => p.alive)) this.startProc();
        }
        this.fireTimers();
        this.startWork();
        await this.settle();
        const choices = this.choices();
        const total = choices.reduce((s, [w]) => s + w, 0);
        const x = this.rng.next() * total;
        let sum = 0;
        const chosen =
          choices.find(([w]) => {
            sum += w;
            return x < sum;
          }) ?? choices.at(-1)!;
        chosen[2]();
        await this.settle();
        this.check(false);
        if (this.quiet()) break;
      }
      this.check(true);
    } catch (error) {
      if (!(error instanceof Violation)) throw error;
      violation = error.message;
      this.log(`VIOLATION: ${violation}`);
    }
    return {
      seed: this.opts.seed,
      steps: this.stepNo,
      virtualMs: this.now - START,
      ...(violation !== undefined && { violation }),
      trace: this.trace.slice(-this.tail),
      explored: this.explored,
      ends: this.ends(),
      stats: {
        commands: this.ssm.commands.length,
        messages: this.sns.delivered.length,
        crashes: this.crashes,
        requests: this.requests.size,
      },
    };
  }

  private ends(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [uid, { key }] of this.requests) {
      const rr = this.server.objects.get(key);
      const k = `${this.lastPhase.get(uid) ?? 'none'}${rr?.status?.reason ? `/${rr.status.reason}` : ''}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  /** Every request ended and was settled, nothing is in flight or queued. */
  private quiet(): boolean {
    if (this.pending.length > 0) return false;
    if (this.procs.some((p) => p.busy > 0 || p.queue.queue.length > 0 || p.cache.behind)) return false;
    for (const [uid, { key }] of this.requests) {
      const phase = this.lastPhase.get(uid);
      if (!phase || !ended(phase)) return false;
      if (this.server.objects.get(key)?.metadata?.finalizers?.includes(EXECUTION_FINALIZER)) return false;
    }
    return this.requests.size > 0 && this.timers.every((t) => !t.label.startsWith('create'));
  }
}

/** Runs one seed. */
export function simulate(opts: SimOptions): Promise<SimResult> {
  return new Simulation(opts).run();
}
