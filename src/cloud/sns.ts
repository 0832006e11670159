/** SNS Publish, for the `sns` action and for `notify` messages. */
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { callOutcome, classifyAwsError } from './errors.js';
import type { PublishInput, Publisher } from './types.js';

export class SnsPublisher implements Publisher {
  constructor(
    private readonly client: SNSClient,
    private readonly onCall: (operation: string, outcome: string) => void = () => {},
  ) {}

  async publish(input: PublishInput): Promise<{ messageId: string }> {
    const fifo = input.topicArn.endsWith('.fifo');
    try {
      const out = await this.client.send(
        new PublishCommand({
          TopicArn: input.topicArn,
          Subject: input.subject,
          Message: input.message,
          MessageAttributes: Object.fromEntries(
            Object.entries(input.attributes ?? {}).map(([k, v]) => [k, { DataType: 'String', StringValue: v }]),
          ),
          ...(fifo && { MessageGroupId: input.messageGroupId, MessageDeduplicationId: input.deduplicationId }),
        }),
      );
      this.onCall('Publish', 'success');
      if (!out.MessageId) throw new Error('SNS answered without a message id');
      return { messageId: out.MessageId };
    } catch (error) {
      this.onCall('Publish', callOutcome(error));
      throw classifyAwsError(error, 'sns:Publish');
    }
  }
}
