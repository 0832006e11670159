// The contract layer's rules, one by one, on requests shaped as the SDK sends them (JSON
// bodies for SSM and CloudWatch, flat form fields for EC2 and SNS). Each limit is shown
// refused with AWS's error code, and a valid call of each operation is shown passing, so
// a rule that is too strict fails here before it fails a product test. No network: the
// gateway tests (gateway.test.ts) do the same through the real SDK and moto.

import { checkContract, unflattenQuery, type ContractCall } from './contract.js';

const ssm = (operation: string, input: object): ContractCall => ({ service: 'ssm', operation, protocol: 'json', input });
const cw = (input: object): ContractCall => ({ service: 'cloudwatch', operation: 'GetMetricData', protocol: 'json', input });
const ec2 = (fields: Record<string, string>): ContractCall => ({
  service: 'ec2',
  operation: 'DescribeInstances',
  protocol: 'ec2-query',
  input: { Action: 'DescribeInstances', Version: '2016-11-15', ...fields },
});
const sns = (fields: Record<string, string>): ContractCall => ({
  service: 'sns',
  operation: 'Publish',
  protocol: 'query',
  input: { Action: 'Publish', Version: '2010-03-31', ...fields },
});
const ids = (n: number, prefix = 'i-'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i.toString(16).padStart(17, '0')}`);
const STANDARD = 'arn:aws:sns:us-east-1:123456789012:alerts';
const FIFO = 'arn:aws:sns:us-east-1:123456789012:alerts.fifo';

const validSend = {
  DocumentName: 'AWS-RunShellScript',
  InstanceIds: ids(50),
  Parameters: { commands: ['systemctl restart nginx'] },
  Comment: 'remediator:0f8fad5b-d9cb-469f-a165-70867728950e',
  TimeoutSeconds: 600,
  MaxConcurrency: '50',
  MaxErrors: '0',
};

async function code(call: ContractCall): Promise<string | undefined> {
  return (await checkContract(call))?.code;
}

describe('unflattenQuery', () => {
  it('nests ec2Query lists and awsQuery member lists and maps', () => {
    expect(unflattenQuery({ 'InstanceId.1': 'a', 'InstanceId.2': 'b', 'Filter.1.Name': 'tag:x', 'Filter.1.Value.1': 'y' })).toEqual({
      InstanceId: ['a', 'b'],
      Filter: [{ Name: 'tag:x', Value: ['y'] }],
    });
    expect(
      unflattenQuery({
        'MetricDataQueries.member.1.Id': 'a',
        'MessageAttributes.entry.1.Name': 'n',
        'MessageAttributes.entry.1.Value.DataType': 'String',
      }),
    ).toEqual({
      MetricDataQueries: [{ Id: 'a' }],
      MessageAttributes: { entry: [{ Name: 'n', Value: { DataType: 'String' } }] },
    });
  });
});

describe('SSM SendCommand', () => {
  it('passes a valid command with 50 instances, hybrid nodes, outputs and tag targets', async () => {
    expect(await checkContract(ssm('SendCommand', validSend))).toBeUndefined();
    expect(await code(ssm('SendCommand', { ...validSend, InstanceIds: [...ids(2), ...ids(2, 'mi-')] }))).toBeUndefined();
    expect(await code(ssm('SendCommand', { ...validSend, InstanceIds: ['i-0123abcd'] }))).toBeUndefined();
    const outputs = {
      OutputS3BucketName: 'my-logs',
      OutputS3KeyPrefix: 'remediator/ns',
      OutputS3Region: 'eu-west-1',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '/remediator/commands', CloudWatchOutputEnabled: true },
    };
    expect(await code(ssm('SendCommand', { ...validSend, ...outputs }))).toBeUndefined();
    const { InstanceIds: _ids, ...noIds } = validSend;
    expect(
      await code(
        ssm('SendCommand', {
          ...noIds,
          Targets: [{ Key: 'tag:remediator.dev/managed', Values: ['true'] }],
          MaxConcurrency: '10%',
          MaxErrors: '100%',
        }),
      ),
    ).toBeUndefined();
  });

  it.each([
    ['51 instance ids', { InstanceIds: ids(51) }, /length less than or equal to 50/],
    ['a malformed instance id', { InstanceIds: ['i-123'] }, /regular expression pattern/],
    ['a 101-character comment', { Comment: 'x'.repeat(101) }, /comment.*less than or equal to 100/],
    ['a timeout below 30 s', { TimeoutSeconds: 29 }, /between 30 and 2592000/],
    ['a timeout above 30 days', { TimeoutSeconds: 2_592_001 }, /between 30 and 2592000/],
    ['maxConcurrency 0', { MaxConcurrency: '0' }, /maxConcurrency/],
    ['maxConcurrency 101%', { MaxConcurrency: '101%' }, /maxConcurrency/],
    ['maxConcurrency with a space', { MaxConcurrency: '10 ' }, /maxConcurrency/],
    ['maxErrors -1', { MaxErrors: '-1' }, /maxErrors/],
    ['maxErrors 05', { MaxErrors: '05' }, /maxErrors/],
    ['maxErrors of 8 characters', { MaxErrors: '12345678' }, /maxErrors/],
    ['a document name with a space', { DocumentName: 'AWS RunShellScript' }, /documentName/],
    ['a two-character document name', { DocumentName: 'ab' }, /documentName/],
    ['an S3 bucket name of 2 characters', { OutputS3BucketName: 'ab' }, /outputS3BucketName/],
    ['an S3 key prefix of 501 characters', { OutputS3KeyPrefix: 'p'.repeat(501) }, /outputS3KeyPrefix/],
    [
      'a log group with a space',
      { CloudWatchOutputConfig: { CloudWatchLogGroupName: 'my group', CloudWatchOutputEnabled: true } },
      /cloudWatchLogGroupName/,
    ],
    ['both InstanceIds and Targets', { Targets: [{ Key: 'tag:a', Values: ['b'] }] }, /cannot both/],
    ['neither InstanceIds nor Targets', { InstanceIds: [] }, /must be specified/],
  ])('refuses %s with ValidationException', async (_what, change, message) => {
    const breach = await checkContract(ssm('SendCommand', { ...validSend, ...change }));
    expect(breach?.code).toBe('ValidationException');
    expect(breach?.message).toMatch(message);
    expect(breach?.reference).toMatch(/API_SendCommand|API_Target|API_CloudWatchOutputConfig/);
  });

  it('refuses more than 5 targets, a target with more than 50 values, and a bad target key', async () => {
    const { InstanceIds: _ids, ...noIds } = validSend;
    const target = (Key: string, n = 1) => ({ Key, Values: Array.from({ length: n }, (_, i) => `v${i}`) });
    expect(await code(ssm('SendCommand', { ...noIds, Targets: Array.from({ length: 6 }, (_, i) => target(`tag:k${i}`)) }))).toBe(
      'ValidationException',
    );
    expect(await code(ssm('SendCommand', { ...noIds, Targets: [target('tag:k', 51)] }))).toBe('ValidationException');
    expect(await code(ssm('SendCommand', { ...noIds, Targets: [target('tag:k;rm')] }))).toBe('ValidationException');
    expect(await code(ssm('SendCommand', { ...noIds, Targets: [target('x'.repeat(164))] }))).toBe('ValidationException');
  });

  it('refuses parameters beyond the 64 KB document limit', async () => {
    expect(await code(ssm('SendCommand', { ...validSend, Parameters: { commands: ['x'.repeat(64 * 1024)] } }))).toBe(
      'MaxDocumentSizeExceeded',
    );
    expect(await code(ssm('SendCommand', { ...validSend, Parameters: { commands: ['x'.repeat(60 * 1024)] } }))).toBeUndefined();
  });
});

describe('SSM reads', () => {
  const commandId = '0f8fad5b-d9cb-469f-a165-70867728950e';
  it('ListCommands: MaxResults 1-50, a 36-character command id, a node id', async () => {
    expect(await code(ssm('ListCommands', { InstanceId: 'i-0123456789abcdef0', MaxResults: 50 }))).toBeUndefined();
    expect(await code(ssm('ListCommands', { MaxResults: 51 }))).toBe('ValidationException');
    expect(await code(ssm('ListCommands', { CommandId: 'abc' }))).toBe('ValidationException');
    expect(await code(ssm('ListCommands', { InstanceId: 'web-1' }))).toBe('ValidationException');
  });

  it('GetCommandInvocation: both ids required and well-formed', async () => {
    expect(await code(ssm('GetCommandInvocation', { CommandId: commandId, InstanceId: 'mi-0123456789abcdef0' }))).toBeUndefined();
    expect(await code(ssm('GetCommandInvocation', { CommandId: commandId }))).toBe('ValidationException');
    expect(await code(ssm('GetCommandInvocation', { CommandId: 'x', InstanceId: 'i-0123456789abcdef0' }))).toBe('ValidationException');
  });

  it('DescribeInstanceInformation: MaxResults 5-50, 1-100 values per filter, never both filter forms', async () => {
    expect(
      await code(ssm('DescribeInstanceInformation', { Filters: [{ Key: 'InstanceIds', Values: ids(50) }], MaxResults: 50 })),
    ).toBeUndefined();
    expect(await code(ssm('DescribeInstanceInformation', { MaxResults: 51 }))).toBe('ValidationException');
    expect(await code(ssm('DescribeInstanceInformation', { MaxResults: 4 }))).toBe('ValidationException');
    expect(await code(ssm('DescribeInstanceInformation', { Filters: [{ Key: 'InstanceIds', Values: ids(101) }] }))).toBe(
      'ValidationException',
    );
    expect(await code(ssm('DescribeInstanceInformation', { InstanceInformationFilterList: [{ key: 'InstanceIds', valueSet: [] }] }))).toBe(
      'ValidationException',
    );
    expect(
      await code(
        ssm('DescribeInstanceInformation', {
          Filters: [{ Key: 'PingStatus', Values: ['Online'] }],
          InstanceInformationFilterList: [{ key: 'InstanceIds', valueSet: ids(1) }],
        }),
      ),
    ).toBe('InvalidInstanceInformationFilterValue');
  });
});

describe('CloudWatch GetMetricData', () => {
  const q = (id: string, period = 60) => ({
    Id: id,
    ReturnData: true,
    MetricStat: { Metric: { Namespace: 'AWS/EC2', MetricName: 'CPUUtilization' }, Period: period, Stat: 'Average' },
  });
  const call = (queries: object[], start = 1_700_000_000, end = 1_700_003_600) =>
    cw({ MetricDataQueries: queries, StartTime: start, EndTime: end });

  it('passes 500 queries with valid, unique ids', async () => {
    expect(await code(call(Array.from({ length: 500 }, (_, i) => q(`m${i}`))))).toBeUndefined();
    expect(await code(call([q('cpu_i0abc', 1), q('x', 300)]))).toBeUndefined();
  });

  it.each([
    ['501 queries', Array.from({ length: 501 }, (_, i) => q(`m${i}`)), /greater than 500/],
    ['an id starting with a capital', [q('Cpu')], /Id/],
    ['an id with a hyphen', [q('cpu-i-0abc')], /Id/],
    ['a duplicate id', [q('a'), q('a')], /Duplicate/],
    ['a period of 90 s', [q('a', 90)], /Period/],
    ['a query with neither MetricStat nor Expression', [{ Id: 'a' }], /exactly one/],
  ])('refuses %s', async (_what, queries, message) => {
    const breach = await checkContract(call(queries));
    expect(breach?.code).toMatch(/^(ValidationError|InvalidParameterValue)$/);
    expect(breach?.message).toMatch(message);
  });

  it('refuses a start time not before the end time', async () => {
    expect(await code(call([q('a')], 1_700_003_600, 1_700_003_600))).toBe('ValidationError');
  });
});

describe('EC2 DescribeInstances', () => {
  const idFields = (n: number): Record<string, string> => Object.fromEntries(ids(n).map((id, i) => [`InstanceId.${i + 1}`, id]));
  const filterFields = (n: number): Record<string, string> => ({
    'Filter.1.Name': 'instance-id',
    ...Object.fromEntries(ids(n).map((id, i) => [`Filter.1.Value.${i + 1}`, id])),
  });

  it('passes ids, filters of up to 200 values, and MaxResults without ids', async () => {
    expect(await code(ec2(idFields(1000)))).toBeUndefined();
    expect(await code(ec2(filterFields(200)))).toBeUndefined();
    expect(await code(ec2({ ...filterFields(3), MaxResults: '1000' }))).toBeUndefined();
  });

  it('refuses MaxResults with ids, MaxResults outside 5-1000, more than 1000 ids, and more than 200 values in a filter', async () => {
    expect(await code(ec2({ ...idFields(2), MaxResults: '10' }))).toBe('InvalidParameterCombination');
    expect(await code(ec2({ MaxResults: '4' }))).toBe('InvalidParameterValue');
    expect(await code(ec2({ MaxResults: '1001' }))).toBe('InvalidParameterValue');
    expect(await code(ec2(idFields(1001)))).toBe('InvalidParameterValue');
    expect(await code(ec2(filterFields(201)))).toBe('FilterLimitExceeded');
  });
});

describe('SNS Publish', () => {
  const attr = (i: number, name: string, dataType: string, value: string): Record<string, string> => ({
    [`MessageAttributes.entry.${i}.Name`]: name,
    [`MessageAttributes.entry.${i}.Value.DataType`]: dataType,
    [`MessageAttributes.entry.${i}.Value.${dataType.startsWith('Binary') ? 'BinaryValue' : 'StringValue'}`]: value,
  });

  it('passes a standard message with subject and attributes, and a FIFO message with group and dedup ids', async () => {
    expect(
      await code(
        sns({
          TopicArn: STANDARD,
          Subject: `[remediator] ${'s'.repeat(87)}`,
          Message: 'hello',
          ...attr(1, 'phase', 'String', 'Failed'),
          ...attr(2, 'count', 'Number', '3'),
        }),
      ),
    ).toBeUndefined();
    expect(
      await code(sns({ TopicArn: FIFO, Message: 'hello', MessageGroupId: 'web/restart-nginx', MessageDeduplicationId: 'x'.repeat(128) })),
    ).toBeUndefined();
    expect(await code(sns({ TopicArn: STANDARD, Message: 'm'.repeat(262_144) }))).toBeUndefined();
  });

  it.each([
    ['a 101-character subject', { Subject: 's'.repeat(101) }],
    ['a subject with a line break', { Subject: 'disk full\non web-1' }],
    ['a non-ASCII subject', { Subject: 'Störung' }],
    ['a subject starting with a space', { Subject: ' leading' }],
    ['a message over 256 KB', { Message: 'm'.repeat(262_145) }],
    ['a message over 256 KB only with its attributes', { Message: 'm'.repeat(262_140), ...attr(1, 'phase', 'String', 'Failed') }],
    ['an empty message', { Message: '' }],
    ['a deduplication id on a standard topic', { MessageDeduplicationId: 'abc' }],
    ['a JSON message structure without a default', { MessageStructure: 'json', Message: '{"email":"x"}' }],
  ])('refuses %s with InvalidParameter', async (_what, change) => {
    expect(await code(sns({ TopicArn: STANDARD, Message: 'hello', ...change }))).toBe('InvalidParameter');
  });

  it('holds FIFO topics to their rules', async () => {
    expect(await code(sns({ TopicArn: FIFO, Message: 'hello', MessageDeduplicationId: 'd' }))).toBe('InvalidParameter');
    expect(await code(sns({ TopicArn: FIFO, Message: 'hello', MessageGroupId: 'g', MessageDeduplicationId: 'x'.repeat(129) }))).toBe(
      'InvalidParameter',
    );
    expect(await code(sns({ TopicArn: FIFO, Message: 'hello', MessageGroupId: 'g h', MessageDeduplicationId: 'd' }))).toBe(
      'InvalidParameter',
    );
    // Without a deduplication id only a topic with content-based deduplication accepts it.
    const call = sns({ TopicArn: FIFO, Message: 'hello', MessageGroupId: 'g' });
    expect((await checkContract(call, { fifoContentBasedDeduplication: async () => false }))?.code).toBe('InvalidParameter');
    expect(await checkContract(call, { fifoContentBasedDeduplication: async () => true })).toBeUndefined();
  });

  it.each([
    ['a reserved AWS. prefix', attr(1, 'AWS.trace', 'String', 'x')],
    ['a reserved amazon. prefix in any case', attr(1, 'amazon.x', 'String', 'x')],
    ['a name with a space', attr(1, 'my attr', 'String', 'x')],
    ['a name with consecutive periods', attr(1, 'a..b', 'String', 'x')],
    ['a name ending in a period', attr(1, 'a.', 'String', 'x')],
    ['an unknown data type', attr(1, 'a', 'Text', 'x')],
    ['a Number that is not a number', attr(1, 'a', 'Number', 'three')],
    ['a String.Array that is not a JSON array', attr(1, 'a', 'String.Array', 'a,b')],
    ['an empty value', attr(1, 'a', 'String', '')],
  ])('refuses a message attribute with %s', async (_what, fields) => {
    expect(await code(sns({ TopicArn: STANDARD, Message: 'hello', ...fields }))).toBe('ParameterValueInvalid');
  });
});

it('leaves operations it has no rules for alone', async () => {
  expect(
    await checkContract({ service: 'ec2', operation: 'RunInstances', protocol: 'ec2-query', input: { MinCount: '500' } }),
  ).toBeUndefined();
  expect(await checkContract({ service: 'sts', operation: 'AssumeRoleWithWebIdentity', protocol: 'query', input: {} })).toBeUndefined();
});

describe('rollouts: AlarmConfiguration, CancelCommand, DescribeAlarms', () => {
  const alarm = (c: unknown) => ssm('SendCommand', { ...validSend, AlarmConfiguration: c });
  it('AlarmConfiguration: exactly one alarm with a name of 1-255 characters, IgnorePollAlarmFailure a boolean', async () => {
    expect(await code(alarm({ Alarms: [{ Name: 'fleet-5xx' }], IgnorePollAlarmFailure: false }))).toBeUndefined();
    expect(await code(alarm({ Alarms: [{ Name: 'fleet-5xx' }] }))).toBeUndefined();
    expect(await code(alarm({}))).toBe('ValidationException');
    expect(await code(alarm({ Alarms: [] }))).toBe('ValidationException');
    expect(await code(alarm({ Alarms: [{ Name: 'a' }, { Name: 'b' }] }))).toBe('ValidationException');
    expect(await code(alarm({ Alarms: [{}] }))).toBe('ValidationException');
    expect(await code(alarm({ Alarms: [{ Name: '   ' }] }))).toBe('ValidationException');
    expect(await code(alarm({ Alarms: [{ Name: 'x'.repeat(256) }] }))).toBe('ValidationException');
    expect(await code(alarm({ Alarms: [{ Name: 'a' }], IgnorePollAlarmFailure: 'yes' }))).toBe('ValidationException');
  });
  it('CancelCommand: a 36-character command id, at most 50 node ids', async () => {
    const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
    expect(await code(ssm('CancelCommand', { CommandId: id }))).toBeUndefined();
    expect(await code(ssm('CancelCommand', { CommandId: id, InstanceIds: ids(50) }))).toBeUndefined();
    expect(await code(ssm('CancelCommand', { CommandId: 'short' }))).toBe('ValidationException');
    expect(await code(ssm('CancelCommand', { CommandId: id, InstanceIds: ids(51) }))).toBe('ValidationException');
    expect(await code(ssm('CancelCommand', { CommandId: id, InstanceIds: ['web-1'] }))).toBe('ValidationException');
  });
  it('DescribeAlarms: at most 100 names, MaxRecords 1-100, names and a prefix not together', async () => {
    const call = (input: object): ContractCall => ({ service: 'cloudwatch', operation: 'DescribeAlarms', protocol: 'json', input });
    expect(await code(call({ AlarmNames: ['a', 'b'], AlarmTypes: ['MetricAlarm', 'CompositeAlarm'] }))).toBeUndefined();
    expect(await code(call({ AlarmNames: Array.from({ length: 101 }, (_, i) => `a${i}`) }))).toBe('ValidationError');
    expect(await code(call({ AlarmNames: [''] }))).toBe('ValidationError');
    expect(await code(call({ MaxRecords: 0 }))).toBe('ValidationError');
    expect(await code(call({ AlarmNames: ['a'], AlarmNamePrefix: 'a' }))).toBe('InvalidParameterCombination');
  });
});
