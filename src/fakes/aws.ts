/**
 * AWS fakes: SSM Run Command and SNS as the controller sees them through src/cloud/types,
 * counting what really went out (the emulator's view, not the caller's). Settable: a
 * listing lag (ListCommands shows a command only a while after SendCommand), how long a
 * command runs, refusals per command comment, and FIFO deduplication within 5 minutes.
 */
import {
  AwsAccessDeniedError,
  type CommandCanceller,
  type CommandRunner,
  type InvocationResult,
  type PublishInput,
  type Publisher,
  type SendCommandInput,
  type SentCommand,
} from '../cloud/types.js';
import { type Call, type Gate, immediate, LostResponseError } from './cluster.js';

/** A gate that answers at once, except that the next `lost()` mutating calls take effect and lose their answer. */
function losing(counter: { lostAnswers: number }, gate: () => Gate): Gate {
  return <T>(call: Call<T>): Promise<T> => {
    if (call.mutates && counter.lostAnswers > 0) {
      counter.lostAnswers--;
      try {
        call.apply();
      } catch {
        /* refused there: the caller cannot tell */
      }
      return Promise.reject(new LostResponseError(call.label));
    }
    return gate()(call);
  };
}

/** An error shaped as the AWS SDK's: `name`, `$fault`. */
export class SdkError extends Error {
  constructor(
    name: string,
    message: string,
    readonly $fault: 'client' | 'server',
    readonly $metadata = { httpStatusCode: $fault === 'server' ? 500 : 400 },
  ) {
    super(message);
    this.name = name;
  }
}

export const throttled = () => new SdkError('ThrottlingException', 'Rate exceeded', 'client');

export interface FakeCommand {
  commandId: string;
  comment: string;
  input: SendCommandInput;
  /** When SSM accepted it (the fake's clock). */
  at: number;
  /** Who sent it (a process name in the simulation). */
  caller: string;
}

/** SSM: the commands it accepted, by comment. */
export class FakeSsm {
  readonly commands: FakeCommand[] = [];
  /** Every SendCommand that reached SSM, accepted or refused: `caller comment outcome`. */
  readonly calls: string[] = [];
  /** ListCommands shows a command this long after it was accepted. */
  listLagMs = 0;
  /** How long each invocation runs before it says Success. */
  runMs = 0;
  /** Refusals for the next SendCommands of a comment: AccessDenied (transient when it runs out) or a permanent client error. */
  readonly refusals = new Map<string, Array<'AccessDenied' | 'Invalid'>>();
  /** The next this many SendCommands take effect and lose their answer. */
  lostAnswers = 0;
  gate: Gate = immediate;

  constructor(private readonly clock: { now(): number }) {}

  /** CancelCommands that reached SSM: the command id and when (a second one changes nothing, as in SSM). */
  readonly cancels: Array<{ commandId: string; at: number; caller: string }> = [];

  /** When a command's invocations end: `runMs` after it was accepted, or at its first cancel (then Cancelled). */
  endOf(c: FakeCommand): { at: number; cancelled: boolean } {
    const cancel = this.cancels.find((x) => x.commandId === c.commandId && x.at < c.at + this.runMs);
    return cancel ? { at: cancel.at, cancelled: true } : { at: c.at + this.runMs, cancelled: false };
  }

  /** CancelCommand, through the same gate (lost answers, throttling) as every call. */
  canceller(caller = 'controller'): CommandCanceller {
    const gate = losing(this, () => this.gate);
    return {
      cancelCommand: (commandId) =>
        gate({
          caller,
          label: `CancelCommand ${commandId}`,
          mutates: true,
          apply: () => {
            if (!this.commands.some((c) => c.commandId === commandId)) throw new SdkError('InvalidCommandId', commandId, 'client');
            this.cancels.push({ commandId, at: this.clock.now(), caller });
          },
          failure: throttled,
        } satisfies Call<void>),
    };
  }

  sentFor(prefix: string): FakeCommand[] {
    return this.commands.filter((c) => c.comment === prefix || c.comment.startsWith(`${prefix}/`));
  }

  runner(caller = 'controller'): CommandRunner {
    const gate = losing(this, () => this.gate);
    const call = <T>(label: string, mutates: boolean, apply: () => T, failure: () => unknown = throttled): Promise<T> =>
      gate({ caller, label, apply, mutates, failure } satisfies Call<T>);
    return {
      sendCommand: (input) =>
        call(`SendCommand ${input.comment}`, true, (): SentCommand => {
          const refusal = this.refusals.get(input.comment)?.shift();
          if (refusal === 'AccessDenied') {
            this.calls.push(`${caller} ${input.comment} AccessDenied`);
            throw new AwsAccessDeniedError('ssm:SendCommand', `not authorized to perform ssm:SendCommand (${input.comment})`);
          }
          if (refusal === 'Invalid') {
            this.calls.push(`${caller} ${input.comment} Invalid`);
            throw new SdkError('InvalidParameters', 'the document refused the parameters', 'client');
          }
          const commandId = `cmd-${this.commands.length + 1}`;
          const at = this.clock.now();
          this.commands.push({ commandId, comment: input.comment, input: structuredClone(input), at, caller });
          this.calls.push(`${caller} ${input.comment} accepted ${commandId}`);
          return { commandId, requestedAt: new Date(at).toISOString() };
        }),
      findCommand: (comment) =>
        call(`ListCommands ${comment}`, false, () => {
          const now = this.clock.now();
          const c = this.commands.find((x) => x.comment === comment && x.at + this.listLagMs <= now);
          return c && { commandId: c.commandId, requestedAt: new Date(c.at).toISOString() };
        }),
      getInvocation: (commandId, instanceId) =>
        call(`GetCommandInvocation ${commandId} ${instanceId}`, false, (): InvocationResult => {
          const c = this.commands.find((x) => x.commandId === commandId);
          if (!c || !c.input.instanceIds.includes(instanceId))
            throw new SdkError('InvocationDoesNotExist', `${commandId} ${instanceId}`, 'client');
          const end = this.endOf(c);
          if (this.clock.now() < end.at) return { instanceId, status: 'InProgress' };
          return end.cancelled
            ? { instanceId, status: 'Cancelled', responseCode: -1 }
            : { instanceId, status: 'Success', responseCode: 0, stdout: 'ok' };
        }),
    };
  }
}

export interface FakeMessage {
  messageId: string;
  input: PublishInput;
  at: number;
  caller: string;
}

/** SNS: messages delivered; a FIFO topic drops a second message with the same deduplication id within 5 minutes. */
export class FakeSns {
  static readonly DEDUP_WINDOW_MS = 5 * 60_000;
  readonly delivered: FakeMessage[] = [];
  /** Publish calls that reached SNS, delivered or deduplicated. */
  calls = 0;
  /** Refusals for the next Publish calls (any topic). */
  readonly refusals: Array<'AuthorizationError' | 'Invalid'> = [];
  /** The next this many Publish calls take effect and lose their answer. */
  lostAnswers = 0;
  gate: Gate = immediate;

  constructor(private readonly clock: { now(): number }) {}

  publisher(caller = 'controller'): Publisher {
    const gate = losing(this, () => this.gate);
    return {
      publish: (input) =>
        gate({
          caller,
          label: `Publish ${input.topicArn.split(':').at(-1)} ${input.deduplicationId ?? ''}`,
          mutates: true,
          failure: throttled,
          apply: () => {
            this.calls++;
            const refusal = this.refusals.shift();
            if (refusal === 'AuthorizationError') throw new AwsAccessDeniedError('sns:Publish', 'not authorized to perform sns:Publish');
            if (refusal === 'Invalid') throw new SdkError('InvalidParameter', 'Invalid parameter: Message', 'client');
            const now = this.clock.now();
            if (input.topicArn.endsWith('.fifo')) {
              const dup = this.delivered.find(
                (m) =>
                  m.input.topicArn === input.topicArn &&
                  m.input.deduplicationId === input.deduplicationId &&
                  now - m.at < FakeSns.DEDUP_WINDOW_MS,
              );
              if (dup) return { messageId: dup.messageId };
            }
            const messageId = `msg-${this.delivered.length + 1}`;
            this.delivered.push({ messageId, input: structuredClone(input), at: now, caller });
            return { messageId };
          },
        }),
    };
  }

  /** Messages delivered with this deduplication id (the request UID, or `<uid>-<phase>` for notifications). */
  deliveredFor(deduplicationId: string): FakeMessage[] {
    return this.delivered.filter((m) => m.input.deduplicationId === deduplicationId);
  }
}
