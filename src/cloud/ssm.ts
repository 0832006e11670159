/**
 * SSM Run Command: send, find again, and read invocations; and whether a node's agent
 * can be reached at all. `findCommand` is what makes execution exactly-once: every
 * command carries the request UID in its `Comment`, so after a crash or a lost response
 * the controller looks the command up instead of sending a second one.
 */
import {
  type SSMClient,
  SendCommandCommand,
  ListCommandsCommand,
  GetCommandInvocationCommand,
  CancelCommandCommand,
  DescribeInstanceInformationCommand,
  type DescribeInstanceInformationCommandOutput,
  type Command,
} from '@aws-sdk/client-ssm';
import { awsErrorName, callOutcome, classifyAwsError } from './errors.js';
import type {
  AgentInspector,
  AgentStatus,
  CommandCanceller,
  CommandRunner,
  InvocationResult,
  SendCommandInput,
  SentCommand,
} from './types.js';

/** SendCommand takes at most 50 InstanceIds; DescribeInstanceInformation pages at most 50 nodes. */
export const MAX_INSTANCES_PER_COMMAND = 50;

/** SSM keeps at most 24,000 characters of output; the status keeps only the tail. */
export const OUTPUT_TAIL_CHARS = 2048;

export function tail(text: string | undefined, max = OUTPUT_TAIL_CHARS): string | undefined {
  if (!text) return undefined;
  return text.length <= max ? text : text.slice(text.length - max);
}

function sent(command: Command | undefined): SentCommand {
  if (!command?.CommandId) throw new Error('SSM answered without a command id');
  return { commandId: command.CommandId, requestedAt: command.RequestedDateTime?.toISOString() };
}

export class SsmCommandRunner implements CommandRunner, CommandCanceller {
  /**
   * `sendClient` must not retry: if a SendCommand response is lost, an SDK retry would
   * send a second command. The controller retries instead, after `findCommand`.
   */
  constructor(
    private readonly client: SSMClient,
    private readonly sendClient: SSMClient,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {}

  private async call<T>(operation: string, iamAction: string, fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      this.onCall(operation, 'success');
      return out;
    } catch (error) {
      this.onCall(operation, callOutcome(error));
      throw classifyAwsError(error, iamAction);
    }
  }

  async sendCommand(input: SendCommandInput): Promise<SentCommand> {
    const out = await this.call('SendCommand', 'ssm:SendCommand', () =>
      this.sendClient.send(
        new SendCommandCommand({
          DocumentName: input.documentName,
          InstanceIds: input.instanceIds,
          Parameters: input.parameters,
          Comment: input.comment,
          TimeoutSeconds: input.timeoutSeconds,
          MaxConcurrency: input.maxConcurrency,
          MaxErrors: input.maxErrors,
          // Written by the instance's role, not the controller's: the controller needs no
          // logs:* or s3:* permission for these (docs/aws-limits.md).
          ...(input.cloudWatchOutput && {
            CloudWatchOutputConfig: {
              CloudWatchOutputEnabled: true,
              ...(input.cloudWatchOutput.logGroupName !== undefined && { CloudWatchLogGroupName: input.cloudWatchOutput.logGroupName }),
            },
          }),
          ...(input.s3Output && {
            OutputS3BucketName: input.s3Output.bucketName,
            ...(input.s3Output.keyPrefix !== undefined && { OutputS3KeyPrefix: input.s3Output.keyPrefix }),
            ...(input.s3Output.region !== undefined && { OutputS3Region: input.s3Output.region }),
          }),
          // SSM stops the command itself when the alarm goes off (docs/rollouts.md); the
          // controller checks every alarm of the rollout between waves as well.
          ...(input.alarm && {
            AlarmConfiguration: {
              Alarms: [{ Name: input.alarm.name }],
              IgnorePollAlarmFailure: input.alarm.ignorePollAlarmFailure,
            },
          }),
        }),
      ),
    );
    return sent(out.Command);
  }

  async cancelCommand(commandId: string, instanceIds?: readonly string[]): Promise<void> {
    // Through the retrying client: cancelling twice changes nothing (ended invocations stay as they are).
    await this.call('CancelCommand', 'ssm:CancelCommand', () =>
      this.client.send(new CancelCommandCommand({ CommandId: commandId, ...(instanceIds && { InstanceIds: [...instanceIds] }) })),
    );
  }

  async findCommand(comment: string, instanceIds: readonly string[]): Promise<SentCommand | undefined> {
    // ListCommands filters by one instance; any target of the command will do.
    const instanceId = instanceIds[0];
    let token: string | undefined;
    do {
      const out = await this.call('ListCommands', 'ssm:ListCommands', () =>
        this.client.send(new ListCommandsCommand({ InstanceId: instanceId, NextToken: token, MaxResults: 50 })),
      );
      const match = (out.Commands ?? []).find((c) => c.Comment === comment);
      if (match) return sent(match);
      token = out.NextToken;
    } while (token);
    return undefined;
  }

  async getInvocation(commandId: string, instanceId: string): Promise<InvocationResult> {
    try {
      const out = await this.call('GetCommandInvocation', 'ssm:GetCommandInvocation', () =>
        this.client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId })),
      );
      return {
        instanceId,
        status: out.Status ?? 'Pending',
        responseCode: out.ResponseCode,
        stdout: tail(out.StandardOutputContent),
        stderr: tail(out.StandardErrorContent),
      };
    } catch (error) {
      // Right after SendCommand the invocation may not exist yet: it is pending, not failed.
      if (awsErrorName(error) === 'InvocationDoesNotExist') return { instanceId, status: 'Pending' };
      throw error;
    }
  }
}

/**
 * Agent reachability through `DescribeInstanceInformation`, for enrichment and the
 * "agent online" guard: an instance whose agent is not Online would only show up later
 * as an Undeliverable or DeliveryTimedOut invocation.
 */
export class SsmAgentInspector implements AgentInspector {
  constructor(
    private readonly client: SSMClient,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {}

  async agentStatus(instanceIds: readonly string[]): Promise<Map<string, AgentStatus>> {
    const out = new Map<string, AgentStatus>();
    const unique = [...new Set(instanceIds)];
    // The InstanceIds filter takes up to 100 values and a page holds at most 50 nodes;
    // asking for 50 at a time makes one page per chunk in the usual case.
    for (let i = 0; i < unique.length; i += MAX_INSTANCES_PER_COMMAND) {
      const chunk = unique.slice(i, i + MAX_INSTANCES_PER_COMMAND);
      let token: string | undefined;
      do {
        let page: DescribeInstanceInformationCommandOutput;
        try {
          page = await this.client.send(
            new DescribeInstanceInformationCommand({
              Filters: [{ Key: 'InstanceIds', Values: chunk }],
              MaxResults: MAX_INSTANCES_PER_COMMAND,
              NextToken: token,
            }),
          );
          this.onCall('DescribeInstanceInformation', 'success');
        } catch (error) {
          this.onCall('DescribeInstanceInformation', callOutcome(error));
          throw classifyAwsError(error, 'ssm:DescribeInstanceInformation');
        }
        for (const info of page.InstanceInformationList ?? []) {
          if (!info.InstanceId) continue;
          out.set(info.InstanceId, {
            pingStatus: info.PingStatus ?? 'Inactive',
            ...(info.PlatformType !== undefined && { platformType: info.PlatformType }),
            ...(info.AgentVersion !== undefined && { agentVersion: info.AgentVersion }),
            ...(info.LastPingDateTime !== undefined && { lastPingAt: info.LastPingDateTime.toISOString() }),
            ...(info.ResourceType !== undefined && { resourceType: info.ResourceType }),
          });
        }
        token = page.NextToken;
      } while (token);
    }
    return out;
  }
}
