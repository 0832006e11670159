// The contract layer: the limits and formats the real AWS APIs enforce and moto ignores.
// moto accepts a SendCommand with 60 instance ids, a 500-character Comment, a
// GetMetricData with 600 queries and an SNS subject with a line break; AWS refuses each
// of them. So every call the product makes in an integration test is checked here
// first (the test bed's gateway, see gateway.ts, runs this before forwarding to moto):
// a call that breaks a documented limit gets the error AWS would send, in AWS's own
// code, and is recorded as a violation, which fails the run unless a test said it
// expected it.
//
// Each rule names the API reference page that documents it (`reference`). Where a limit
// is observed rather than written on that page, the rule says so.
//
// `checkContract` is pure apart from the optional `lookups` (facts only AWS state can
// answer, e.g. whether a FIFO topic deduplicates by content), so its unit tests need no
// network.

import type { WireProtocol } from './faultproxy.js';

/** What the checker needs to know about a request (a subset of the fault proxy's RequestView). */
export interface ContractCall {
  readonly service: string | undefined;
  readonly operation: string | undefined;
  readonly protocol: WireProtocol;
  /** JSON protocols: the parsed body. Query protocols: the flat form fields (`InstanceId.1`, ...). */
  readonly input: unknown;
}

/** A broken limit, and the error AWS answers it with. */
export interface Breach {
  /** The AWS error code, e.g. ValidationException (SSM), InvalidParameter (SNS). */
  readonly code: string;
  readonly status: number;
  readonly message: string;
  /** The AWS API reference page that documents the limit. */
  readonly reference: string;
}

/** Facts about AWS state a rule may need; each answers from moto in the test bed. */
export interface ContractLookups {
  /** Whether the FIFO topic has ContentBasedDeduplication on (then a deduplication id is optional). */
  fifoContentBasedDeduplication?(topicArn: string): Promise<boolean>;
}

type Json = Record<string, unknown>;

const SSM_API = 'https://docs.aws.amazon.com/systems-manager/latest/APIReference';
const CW_API = 'https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference';
const EC2_API = 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference';
const SNS_API = 'https://docs.aws.amazon.com/sns/latest/api';

// ---------------------------------------------------------------------------------------
// Reading inputs

/**
 * Turns awsQuery / ec2Query form fields into the nested shape the JSON protocols send:
 * `Filter.1.Value.2` → `{ Filter: [{ Value: [, 'x'] }] }`; `member` segments (awsQuery
 * lists) are dropped, so `MetricDataQueries.member.1.Id` → `{ MetricDataQueries: [{ Id }] }`.
 */
export function unflattenQuery(fields: Readonly<Record<string, string>>): Json {
  const root: Json = {};
  for (const [key, value] of Object.entries(fields)) {
    const path = key.split('.').filter((s) => s !== 'member');
    let node: Json | unknown[] = root;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const slot: string | number = /^[1-9][0-9]*$/.test(seg) ? Number(seg) - 1 : seg;
      const last = i === path.length - 1;
      const container = node as Record<string | number, unknown>;
      if (last) {
        container[slot] = value;
      } else {
        const nextIsIndex = /^[1-9][0-9]*$/.test(path[i + 1]!);
        container[slot] ??= nextIsIndex ? [] : {};
        node = container[slot] as Json | unknown[];
      }
    }
  }
  return root;
}

function inputOf(call: ContractCall): Json {
  if (call.input === null || typeof call.input !== 'object') return {};
  if (call.protocol === 'query' || call.protocol === 'ec2-query') return unflattenQuery(call.input as Record<string, string>);
  return call.input as Json;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v.filter((x) => x !== undefined) : []);
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const num = (v: unknown): number | undefined =>
  typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : undefined;
const excerpt = (v: unknown): string => {
  const s = typeof v === 'string' ? v : (JSON.stringify(v) ?? 'null');
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

// ---------------------------------------------------------------------------------------
// SSM (awsJson1_1): constraint failures answer 400 ValidationException in the Coral style.

function ssmInvalid(field: string, value: unknown, constraint: string, operation: string): Breach {
  return {
    code: 'ValidationException',
    status: 400,
    message: `1 validation error detected: Value '${excerpt(value)}' at '${field}' failed to satisfy constraint: ${constraint}`,
    reference: `${SSM_API}/API_${operation}.html`,
  };
}

/** SSM's managed node id (API_SendCommand: InstanceIds member pattern): EC2 `i-` ids and hybrid `mi-` nodes. */
export const SSM_NODE_ID = /^(i-(\w{8}|\w{17})|mi-\w{17})$/;

function checkSendCommand(input: Json): Breach | undefined {
  const op = 'SendCommand';
  const bad = (field: string, value: unknown, constraint: string): Breach => ssmInvalid(field, value, constraint, op);
  // API_SendCommand: DocumentName is required; Pattern ^[a-zA-Z0-9_\-.:/]{3,128}$ (a name or a shared document's ARN).
  const documentName = str(input['DocumentName']);
  if (documentName === undefined) return bad('documentName', null, 'Member must not be null');
  if (!/^[a-zA-Z0-9_\-.:/]{3,128}$/.test(documentName)) {
    return bad('documentName', documentName, 'Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.:/]{3,128}$');
  }
  // API_SendCommand: InstanceIds — Array Members: maximum number of 50 items; each an i- or mi- node id.
  const instanceIds = arr(input['InstanceIds']);
  if (instanceIds.length > 50) return bad('instanceIds', `[${instanceIds.length} ids]`, 'Member must have length less than or equal to 50');
  for (const id of instanceIds) {
    if (typeof id !== 'string' || !SSM_NODE_ID.test(id)) {
      return bad('instanceIds', id, 'Member must satisfy regular expression pattern: (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)');
    }
  }
  // API_SendCommand / API_Target: Targets — at most 5; Key 1-163 characters of the documented set; Values at most 50.
  const targets = arr(input['Targets']);
  if (targets.length > 5) return bad('targets', `[${targets.length} targets]`, 'Member must have length less than or equal to 5');
  for (const t of targets) {
    const key = str(obj(t)['Key']) ?? '';
    const keyOk =
      /^[\p{L}\p{Z}\p{N}_.:/=\-@]*$/u.test(key) || key === 'resource-groups:ResourceTypeFilters' || key === 'resource-groups:Name';
    if (key.length < 1 || key.length > 163 || !keyOk)
      return bad('targets.member.key', key, 'Member must have length between 1 and 163 and match ^[\\p{L}\\p{Z}\\p{N}_.:/=\\-@]*$');
    const values = arr(obj(t)['Values']);
    if (values.length > 50)
      return bad('targets.member.values', `[${values.length} values]`, 'Member must have length less than or equal to 50');
  }
  // API_SendCommand: a command goes to InstanceIds or to Targets — one of them, not both.
  if (instanceIds.length > 0 === targets.length > 0) {
    return {
      code: 'ValidationException',
      status: 400,
      message:
        instanceIds.length > 0 ? 'InstanceIds and Targets cannot both be specified' : 'Either InstanceIds or Targets must be specified',
      reference: `${SSM_API}/API_SendCommand.html`,
    };
  }
  // API_SendCommand: Comment — Maximum length of 100.
  const comment = input['Comment'];
  if (typeof comment === 'string' && comment.length > 100)
    return bad('comment', comment, 'Member must have length less than or equal to 100');
  // API_SendCommand: TimeoutSeconds — Valid Range: Minimum value of 30. Maximum value of 2592000.
  const timeout = input['TimeoutSeconds'];
  if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 30 || timeout > 2_592_000)) {
    return bad('timeoutSeconds', timeout, 'Member must have value between 30 and 2592000');
  }
  // API_SendCommand: MaxConcurrency — length 1-7, Pattern ^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$.
  const maxConcurrency = input['MaxConcurrency'];
  if (
    maxConcurrency !== undefined &&
    !(typeof maxConcurrency === 'string' && maxConcurrency.length <= 7 && /^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$/.test(maxConcurrency))
  ) {
    return bad('maxConcurrency', maxConcurrency, 'Member must satisfy regular expression pattern: ^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$');
  }
  // API_SendCommand: MaxErrors — length 1-7, Pattern ^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$.
  const maxErrors = input['MaxErrors'];
  if (
    maxErrors !== undefined &&
    !(typeof maxErrors === 'string' && maxErrors.length <= 7 && /^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$/.test(maxErrors))
  ) {
    return bad('maxErrors', maxErrors, 'Member must satisfy regular expression pattern: ^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$');
  }
  // API_SendCommand: OutputS3BucketName 3-63, OutputS3KeyPrefix at most 500, OutputS3Region 3-20 characters.
  const bucket = input['OutputS3BucketName'];
  if (bucket !== undefined && !(typeof bucket === 'string' && bucket.length >= 3 && bucket.length <= 63)) {
    return bad('outputS3BucketName', bucket, 'Member must have length between 3 and 63');
  }
  const prefix = input['OutputS3KeyPrefix'];
  if (prefix !== undefined && !(typeof prefix === 'string' && prefix.length <= 500))
    return bad('outputS3KeyPrefix', prefix, 'Member must have length less than or equal to 500');
  const s3Region = input['OutputS3Region'];
  if (s3Region !== undefined && !(typeof s3Region === 'string' && s3Region.length >= 3 && s3Region.length <= 20)) {
    return bad('outputS3Region', s3Region, 'Member must have length between 3 and 20');
  }
  // API_CloudWatchOutputConfig: CloudWatchLogGroupName — length 1-512, Pattern [\.\-_/#A-Za-z0-9]+.
  const cwConfig = input['CloudWatchOutputConfig'];
  if (cwConfig !== undefined) {
    const group = obj(cwConfig)['CloudWatchLogGroupName'];
    if (
      group !== undefined &&
      !(typeof group === 'string' && group.length >= 1 && group.length <= 512 && /^[.\-_/#A-Za-z0-9]+$/.test(group))
    ) {
      return bad(
        'cloudWatchOutputConfig.cloudWatchLogGroupName',
        group,
        'Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+',
      );
    }
  }
  // API_AlarmConfiguration: Alarms — required, "Array Members: Fixed number of 1 item";
  // IgnorePollAlarmFailure — Boolean. API_Alarm: Name — required, length 1-255, Pattern ^(?!\s*$).+
  const alarmConfig = input['AlarmConfiguration'];
  if (alarmConfig !== undefined) {
    const c = obj(alarmConfig);
    const alarms = c['Alarms'];
    if (!Array.isArray(alarms)) return bad('alarmConfiguration.alarms', null, 'Member must not be null');
    if (alarms.length !== 1) return bad('alarmConfiguration.alarms', `[${alarms.length} alarms]`, 'Member must have length 1');
    const name = obj(alarms[0])['Name'];
    if (typeof name !== 'string') return bad('alarmConfiguration.alarms.member.name', null, 'Member must not be null');
    if (name.length < 1 || name.length > 255) {
      return bad('alarmConfiguration.alarms.member.name', name, 'Member must have length between 1 and 255');
    }
    if (!/^(?!\s*$).+/.test(name)) {
      return bad('alarmConfiguration.alarms.member.name', name, 'Member must satisfy regular expression pattern: ^(?!\\s*$).+');
    }
    const ignore = c['IgnorePollAlarmFailure'];
    if (ignore !== undefined && typeof ignore !== 'boolean') {
      return bad('alarmConfiguration.ignorePollAlarmFailure', ignore, 'Member must be a boolean');
    }
  }
  // Parameters become part of the document SSM runs, and a document is at most 64 KB
  // (API_SendCommand's MaxDocumentSizeExceeded: "The size limit of a document is 64 KB").
  // The reference gives no separate per-parameter limit, so the checker holds the
  // parameters' total (names and values, UTF-8) to that bound: a conservative reading.
  const parameters = obj(input['Parameters']);
  let paramBytes = 0;
  for (const [name, values] of Object.entries(parameters)) {
    paramBytes += Buffer.byteLength(name);
    for (const v of arr(values)) paramBytes += Buffer.byteLength(String(v));
  }
  if (paramBytes > 64 * 1024) {
    return {
      code: 'MaxDocumentSizeExceeded',
      status: 400,
      message: `The size limit of a document is 64 KB (parameters: ${paramBytes} bytes)`,
      reference: `${SSM_API}/API_SendCommand.html`,
    };
  }
  return undefined;
}

function checkListCommands(input: Json): Breach | undefined {
  const op = 'ListCommands';
  // API_ListCommands: MaxResults 1-50; CommandId fixed length 36; InstanceId a node id; Filters 1-5 items.
  const max = input['MaxResults'];
  if (max !== undefined && !(typeof max === 'number' && max >= 1 && max <= 50))
    return ssmInvalid('maxResults', max, 'Member must have value between 1 and 50', op);
  const commandId = input['CommandId'];
  if (commandId !== undefined && !(typeof commandId === 'string' && commandId.length === 36))
    return ssmInvalid('commandId', commandId, 'Member must have length 36', op);
  const instanceId = input['InstanceId'];
  if (instanceId !== undefined && !(typeof instanceId === 'string' && SSM_NODE_ID.test(instanceId))) {
    return ssmInvalid(
      'instanceId',
      instanceId,
      'Member must satisfy regular expression pattern: (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)',
      op,
    );
  }
  const filters = input['Filters'];
  if (filters !== undefined && (arr(filters).length < 1 || arr(filters).length > 5))
    return ssmInvalid('filters', filters, 'Member must have length between 1 and 5', op);
  return undefined;
}

function checkGetCommandInvocation(input: Json): Breach | undefined {
  const op = 'GetCommandInvocation';
  // API_GetCommandInvocation: CommandId (required) fixed length 36; InstanceId (required) a node id.
  const commandId = input['CommandId'];
  if (!(typeof commandId === 'string' && commandId.length === 36))
    return ssmInvalid('commandId', commandId, 'Member must have length 36', op);
  const instanceId = input['InstanceId'];
  if (!(typeof instanceId === 'string' && SSM_NODE_ID.test(instanceId))) {
    return ssmInvalid(
      'instanceId',
      instanceId,
      'Member must satisfy regular expression pattern: (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)',
      op,
    );
  }
  return undefined;
}

function checkCancelCommand(input: Json): Breach | undefined {
  const op = 'CancelCommand';
  // API_CancelCommand: CommandId (required) fixed length 36; InstanceIds at most 50 node ids.
  const commandId = input['CommandId'];
  if (!(typeof commandId === 'string' && commandId.length === 36))
    return ssmInvalid('commandId', commandId, 'Member must have length 36', op);
  const instanceIds = input['InstanceIds'];
  if (instanceIds !== undefined) {
    const ids = arr(instanceIds);
    if (ids.length > 50) return ssmInvalid('instanceIds', `[${ids.length} ids]`, 'Member must have length less than or equal to 50', op);
    for (const id of ids) {
      if (typeof id !== 'string' || !SSM_NODE_ID.test(id)) {
        return ssmInvalid('instanceIds', id, 'Member must satisfy regular expression pattern: (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)', op);
      }
    }
  }
  return undefined;
}

function checkDescribeInstanceInformation(input: Json): Breach | undefined {
  const op = 'DescribeInstanceInformation';
  // API_DescribeInstanceInformation: MaxResults 5-50; InstanceInformationFilterList (legacy)
  // and Filters may not be combined; each filter has 1-100 values
  // (API_InstanceInformationFilter valueSet, API_InstanceInformationStringFilter Values).
  const max = input['MaxResults'];
  if (max !== undefined && !(typeof max === 'number' && max >= 5 && max <= 50))
    return ssmInvalid('maxResults', max, 'Member must have value between 5 and 50', op);
  const legacy = arr(input['InstanceInformationFilterList']);
  const filters = arr(input['Filters']);
  if (legacy.length > 0 && filters.length > 0) {
    return {
      code: 'InvalidInstanceInformationFilterValue',
      status: 400,
      message: 'InstanceInformationFilterList and Filters cannot be combined',
      reference: `${SSM_API}/API_${op}.html`,
    };
  }
  for (const f of legacy) {
    const values = arr(obj(f)['valueSet']);
    if (values.length < 1 || values.length > 100)
      return ssmInvalid(
        'instanceInformationFilterList.member.valueSet',
        `[${values.length} values]`,
        'Member must have length between 1 and 100',
        op,
      );
  }
  for (const f of filters) {
    const values = arr(obj(f)['Values']);
    if (values.length < 1 || values.length > 100)
      return ssmInvalid('filters.member.values', `[${values.length} values]`, 'Member must have length between 1 and 100', op);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// CloudWatch (awsJson1_0, query-compatible): the query-era code ValidationError / InvalidParameterValue.

function checkGetMetricData(input: Json): Breach | undefined {
  const ref = `${CW_API}/API_GetMetricData.html`;
  const queries = arr(input['MetricDataQueries']);
  // API_GetMetricData: "A single GetMetricData call can include as many as 500 MetricDataQuery structures."
  if (queries.length > 500) {
    return {
      code: 'ValidationError',
      status: 400,
      message: `The collection MetricDataQueries must not have a size greater than 500 (got ${queries.length}).`,
      reference: ref,
    };
  }
  if (queries.length === 0)
    return { code: 'ValidationError', status: 400, message: 'The collection MetricDataQueries must not be empty.', reference: ref };
  const seen = new Set<string>();
  for (const q of queries) {
    const id = str(obj(q)['Id']);
    // API_MetricDataQuery: Id 1-255 characters; "The first character must be a lowercase letter"; letters, numbers, underscore.
    if (id === undefined || id.length > 255 || !/^[a-z][a-zA-Z0-9_]*$/.test(id)) {
      return {
        code: 'ValidationError',
        status: 400,
        message: `Invalid metric data query Id '${excerpt(id)}': must match ^[a-z][a-zA-Z0-9_]*$`,
        reference: `${CW_API}/API_MetricDataQuery.html`,
      };
    }
    // API_MetricDataQuery: "This Id must be unique within a MetricDataQueries array."
    if (seen.has(id))
      return {
        code: 'ValidationError',
        status: 400,
        message: `Duplicate metric data query Id '${id}'`,
        reference: `${CW_API}/API_MetricDataQuery.html`,
      };
    seen.add(id);
    // API_MetricDataQuery: exactly one of MetricStat and Expression.
    const stat = obj(q)['MetricStat'];
    const expression = obj(q)['Expression'];
    if ((stat === undefined) === (expression === undefined)) {
      return {
        code: 'ValidationError',
        status: 400,
        message: `Query '${id}': specify exactly one of MetricStat and Expression`,
        reference: `${CW_API}/API_MetricDataQuery.html`,
      };
    }
    // API_MetricStat: Period — 1, 5, 10, 20, 30 (high resolution) or any multiple of 60.
    if (stat !== undefined) {
      const period = num(obj(stat)['Period']);
      if (period === undefined || !([1, 5, 10, 20, 30].includes(period) || (period > 0 && period % 60 === 0))) {
        return {
          code: 'InvalidParameterValue',
          status: 400,
          message: `Query '${id}': Period ${excerpt(period)} must be 1, 5, 10, 20, 30 or a multiple of 60`,
          reference: `${CW_API}/API_MetricStat.html`,
        };
      }
    }
  }
  // API_GetMetricData: the StartTime "must be before" EndTime.
  const start = num(input['StartTime']);
  const end = num(input['EndTime']);
  if (start !== undefined && end !== undefined && !Number.isNaN(start) && !Number.isNaN(end) && start >= end) {
    return {
      code: 'ValidationError',
      status: 400,
      message: 'The parameter StartTime must be less than the parameter EndTime.',
      reference: ref,
    };
  }
  return undefined;
}

function checkDescribeAlarms(input: Json): Breach | undefined {
  const ref = `${CW_API}/API_DescribeAlarms.html`;
  // API_DescribeAlarms: AlarmNames — "Array Members: Maximum number of 100 items", each 1-255 characters;
  // MaxRecords 1-100; AlarmNamePrefix cannot be combined with AlarmNames.
  const names = arr(input['AlarmNames']);
  if (names.length > 100) {
    return {
      code: 'ValidationError',
      status: 400,
      message: `The collection AlarmNames must not have a size greater than 100 (got ${names.length}).`,
      reference: ref,
    };
  }
  for (const n of names) {
    if (typeof n !== 'string' || n.length < 1 || n.length > 255) {
      return { code: 'ValidationError', status: 400, message: `Invalid alarm name '${excerpt(n)}': 1 to 255 characters`, reference: ref };
    }
  }
  const max = num(input['MaxRecords']);
  if (input['MaxRecords'] !== undefined && !(max !== undefined && max >= 1 && max <= 100)) {
    return { code: 'ValidationError', status: 400, message: 'MaxRecords must be between 1 and 100', reference: ref };
  }
  if (names.length > 0 && input['AlarmNamePrefix'] !== undefined) {
    return {
      code: 'InvalidParameterCombination',
      status: 400,
      message: 'AlarmNames and AlarmNamePrefix cannot be combined',
      reference: ref,
    };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// EC2 (ec2Query)

function checkDescribeInstances(input: Json): Breach | undefined {
  const ref = `${EC2_API}/API_DescribeInstances.html`;
  const ids = arr(input['InstanceId']);
  const max = input['MaxResults'];
  // API_DescribeInstances: MaxResults — "You cannot specify this parameter and the instance IDs parameter in the same request."
  if (max !== undefined && ids.length > 0) {
    return {
      code: 'InvalidParameterCombination',
      status: 400,
      message: 'The parameter instancesSet cannot be used with the parameter maxResults',
      reference: ref,
    };
  }
  // API_DescribeInstances: MaxResults — "You can specify a value between 5 and 1000."
  const m = num(max);
  if (max !== undefined && !(m !== undefined && Number.isInteger(m) && m >= 5 && m <= 1000)) {
    return {
      code: 'InvalidParameterValue',
      status: 400,
      message: `Value ( ${excerpt(max)} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`,
      reference: ref,
    };
  }
  // The EC2 pagination guide (ec2/latest/devguide/ec2-api-pagination.html): "you should not
  // specify more than 1,000 IDs in a single call".
  if (ids.length > 1000)
    return {
      code: 'InvalidParameterValue',
      status: 400,
      message: `Too many instance ids (${ids.length}); at most 1000 per call`,
      reference: ref,
    };
  // FilterLimitExceeded ("The request uses too many filters or too many filter values",
  // EC2 API reference: Error codes) is documented; the numbers are not on the API page.
  // AWS answers it above 200 values in one filter (observed, and what other operators
  // chunk to), and above 50 filters.
  const filters = arr(input['Filter']);
  if (filters.length > 50)
    return {
      code: 'FilterLimitExceeded',
      status: 400,
      message: `The request uses too many filters (${filters.length}); at most 50`,
      reference: `${EC2_API}/errors-overview.html`,
    };
  for (const f of filters) {
    const values = arr(obj(f)['Value']);
    if (values.length > 200) {
      return {
        code: 'FilterLimitExceeded',
        status: 400,
        message: `The request uses too many filter values (${values.length} in filter ${excerpt(obj(f)['Name'])}); at most 200`,
        reference: `${EC2_API}/errors-overview.html`,
      };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// SNS (awsQuery)

/** API_Publish: MessageGroupId / MessageDeduplicationId — up to 128 alphanumeric characters and punctuation. */
const SNS_TOKEN = /^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]{1,128}$/;
const SNS_MESSAGE_MAX_BYTES = 262_144;

async function checkPublish(input: Json, lookups: ContractLookups): Promise<Breach | undefined> {
  const ref = `${SNS_API}/API_Publish.html`;
  const invalid = (what: string): Breach => ({
    code: 'InvalidParameter',
    status: 400,
    message: `Invalid parameter: ${what}`,
    reference: ref,
  });
  const message = str(input['Message']);
  if (message === undefined || message === '') return invalid('Message must not be empty');
  // API_Publish: Subject — "Must be ASCII text that begins with a letter, number, or
  // punctuation mark; must not include line breaks or control characters; and must be
  // less than 100 characters long." (AWS accepts exactly 100.)
  const subject = input['Subject'];
  if (subject !== undefined) {
    if (typeof subject !== 'string' || subject.length < 1 || subject.length > 100) return invalid('Subject (at most 100 characters)');
    if (!/^[\x20-\x7e]+$/.test(subject)) return invalid('Subject (ASCII text only, no line breaks or control characters)');
    if (!/^[A-Za-z0-9!-/:-@[-`{-~]/.test(subject)) return invalid('Subject (must begin with a letter, number or punctuation mark)');
  }
  // API_Publish: MessageStructure json — Message must be a JSON object with a top-level "default" key.
  if (input['MessageStructure'] === 'json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      parsed = undefined;
    }
    if (typeof obj(parsed)['default'] !== 'string') return invalid('Message Structure - No default entry in JSON message body');
  }
  // API_MessageAttributeValue + SNS developer guide (sns-message-attributes): names 1-256
  // characters of A-Za-z0-9_-. , no leading/trailing period, no "..", not starting with
  // AWS. or Amazon.; types String, String.Array, Number, Binary (optionally with a
  // custom suffix); name, type and value must not be empty. (The 10-attribute limit
  // applies only to raw delivery to SQS subscriptions, not to Publish.)
  let size = Buffer.byteLength(message);
  const entries =
    arr(obj(input['MessageAttributes'])['entry']).length > 0
      ? arr(obj(input['MessageAttributes'])['entry']).map((e) => [str(obj(e)['Name']) ?? '', obj(obj(e)['Value'])] as const)
      : Object.entries(obj(input['MessageAttributes'])).map(([k, v]) => [k, obj(v)] as const);
  for (const [name, value] of entries) {
    const attrRef = `${SNS_API}/API_MessageAttributeValue.html`;
    const bad = (why: string): Breach => ({
      code: 'ParameterValueInvalid',
      status: 400,
      message: `The message attribute '${excerpt(name)}' ${why}`,
      reference: attrRef,
    });
    if (!/^[A-Za-z0-9_.-]{1,256}$/.test(name) || name.startsWith('.') || name.endsWith('.') || name.includes('..'))
      return bad('has an invalid name');
    if (/^(aws|amazon)\./i.test(name)) return bad('uses a reserved prefix (AWS. / Amazon.)');
    const dataType = str(value['DataType']) ?? '';
    if (!/^(String|String\.Array|Number|Binary)(\..+)?$/.test(dataType) || Buffer.byteLength(dataType) > 256)
      return bad(`has an invalid data type '${excerpt(dataType)}'`);
    const stringValue = str(value['StringValue']);
    const binaryValue = str(value['BinaryValue']);
    if (dataType.startsWith('Binary') ? !binaryValue : !stringValue) return bad('must have a value');
    if (dataType.startsWith('Number') && !/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(stringValue!))
      return bad(`has an invalid Number value '${excerpt(stringValue)}'`);
    if (dataType.startsWith('String.Array')) {
      let ok = false;
      try {
        ok = Array.isArray(JSON.parse(stringValue!));
      } catch {
        ok = false;
      }
      if (!ok) return bad('must be a JSON array (String.Array)');
    }
    size += Buffer.byteLength(name) + Buffer.byteLength(dataType) + Buffer.byteLength(stringValue ?? binaryValue ?? '');
  }
  // API_Publish: messages "must be UTF-8 encoded strings and at most 256 KB in size
  // (262,144 bytes, not 262,144 characters)"; message attributes count toward the limit
  // (API_MessageAttributeValue).
  if (size > SNS_MESSAGE_MAX_BYTES) return invalid(`Message too long (${size} bytes with attributes; at most ${SNS_MESSAGE_MAX_BYTES})`);

  const topicArn = str(input['TopicArn']) ?? str(input['TargetArn']) ?? '';
  const fifo = topicArn.endsWith('.fifo');
  const groupId = input['MessageGroupId'];
  const dedupId = input['MessageDeduplicationId'];
  // API_Publish: MessageGroupId — required for FIFO topics. (Standard topics accept it
  // too, for SQS fair queues, so only its format is checked there.)
  if (fifo && groupId === undefined) return invalid('The MessageGroupId parameter is required for FIFO topics');
  if (groupId !== undefined && !(typeof groupId === 'string' && SNS_TOKEN.test(groupId)))
    return invalid('MessageGroupId (1-128 alphanumeric or punctuation characters)');
  // API_Publish: MessageDeduplicationId — FIFO topics only; up to 128 characters.
  if (dedupId !== undefined) {
    if (!fifo)
      return invalid(
        'MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type',
      );
    if (!(typeof dedupId === 'string' && SNS_TOKEN.test(dedupId)))
      return invalid('MessageDeduplicationId (1-128 alphanumeric or punctuation characters)');
  }
  // API_Publish: without ContentBasedDeduplication on the topic, a FIFO message needs an explicit MessageDeduplicationId.
  if (fifo && dedupId === undefined && lookups.fifoContentBasedDeduplication && !(await lookups.fifoContentBasedDeduplication(topicArn))) {
    return invalid('The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly');
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------

/** The limit `call` breaks, if any (the first one, as AWS reports one error per call). */
export async function checkContract(call: ContractCall, lookups: ContractLookups = {}): Promise<Breach | undefined> {
  // The SDK in node_modules speaks JSON or query to every service used here; a CBOR body
  // (were CloudWatch to switch) is not decoded, so it is not checked: see faultproxy.ts.
  if (call.protocol === 'rpcv2-cbor' || call.protocol === 'unknown') return undefined;
  const input = inputOf(call);
  switch (`${call.service}:${call.operation}`) {
    case 'ssm:SendCommand':
      return checkSendCommand(input);
    case 'ssm:ListCommands':
      return checkListCommands(input);
    case 'ssm:GetCommandInvocation':
      return checkGetCommandInvocation(input);
    case 'ssm:DescribeInstanceInformation':
      return checkDescribeInstanceInformation(input);
    case 'ssm:CancelCommand':
      return checkCancelCommand(input);
    case 'cloudwatch:DescribeAlarms':
      return checkDescribeAlarms(input);
    case 'cloudwatch:GetMetricData':
      return checkGetMetricData(input);
    case 'ec2:DescribeInstances':
      return checkDescribeInstances(input);
    case 'sns:Publish':
      return checkPublish(input, lookups);
    default:
      return undefined;
  }
}
