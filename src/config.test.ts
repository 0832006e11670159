import { BOOLEAN_FLAGS, envName, loadConfig, parseBoolean, USAGE, type ControllerConfig } from './config.js';

/** Where each boolean flag lands in the loaded configuration. */
const READ: Partial<Record<(typeof BOOLEAN_FLAGS)[number], (c: ControllerConfig) => boolean>> = {
  'leader-elect': (c) => c.leaderElect,
};

function load(argv: string[], env: NodeJS.ProcessEnv = {}): ControllerConfig {
  const c = loadConfig(argv, env);
  if (c === 'help') throw new Error('unexpected --help');
  return c;
}

describe('boolean flags: every spelling behaves as docs/operations.md says', () => {
  test('the table below covers every boolean flag', () => {
    expect(Object.keys(READ).sort()).toEqual([...BOOLEAN_FLAGS].sort());
    expect(BOOLEAN_FLAGS.length).toBeGreaterThan(0);
  });

  // [argv, env value, in a cluster?, expected]
  const cases: Array<[string[], string | undefined, boolean, boolean]> = [
    [[], undefined, false, false],
    [[], undefined, true, true],
    [['--F'], undefined, false, true],
    [['--F=true'], undefined, false, true],
    [['--F=false'], undefined, true, false],
    [['--F=FALSE'], undefined, true, false],
    [['--F=0'], undefined, true, false],
    [['--F=1'], undefined, false, true],
    [['--no-F'], undefined, true, false],
    // The environment when no flag is given...
    [[], 'false', true, false],
    [[], 'False', true, false],
    [[], '0', true, false],
    [[], 'true', false, true],
    [[], 'yes', false, true],
    // ...and a flag on the command line wins over it.
    [['--F=false'], 'true', false, false],
    [['--no-F'], 'true', false, false],
    [['--F'], 'false', false, true],
    [['--F=true'], 'false', false, true],
    // The last of several wins, as with Go's flag package.
    [['--F', '--no-F'], undefined, false, false],
    [['--no-F', '--F=true'], undefined, false, true],
  ];

  describe.each(BOOLEAN_FLAGS)('--%s', (flag) => {
    test.each(cases)('%j with env %s (in cluster: %s) → %s', (argv, envValue, inCluster, expected) => {
      const env: NodeJS.ProcessEnv = {
        ...(envValue !== undefined && { [envName(flag)]: envValue }),
        ...(inCluster && { KUBERNETES_SERVICE_HOST: '10.0.0.1' }),
      };
      expect(
        READ[flag]!(
          load(
            argv.map((a) => a.replace('F', flag)),
            env,
          ),
        ),
      ).toBe(expected);
    });

    test('a value that is not a boolean is an error naming the flag, never silently false', () => {
      expect(() => load([`--${flag}=maybe`])).toThrow(`--${flag} must be true or false, got "maybe"`);
      expect(() => load([], { [envName(flag)]: 'ture' })).toThrow(`${envName(flag)} must be true or false, got "ture"`);
    });

    test('is documented with its --no- and =false spellings', () => {
      expect(USAGE).toContain(`--${flag}`);
      expect(USAGE).toMatch(/--flag=true\|false, --no-flag/);
    });
  });
});

describe('parseBoolean', () => {
  test.each([
    ['true', true],
    [' TRUE ', true],
    ['on', true],
    ['no', false],
    ['off', false],
  ])('%j → %s', (value, expected) => expect(parseBoolean(value, 'X')).toBe(expected));
});

describe('intake connection limits', () => {
  test('defaults, flags and env', () => {
    expect(load([]).intake).toMatchObject({ maxConnections: 512, maxConnectionsPerSource: 64 });
    expect(load(['--intake-max-connections=100', '--intake-max-connections-per-source', '0']).intake).toMatchObject({
      maxConnections: 100,
      maxConnectionsPerSource: 0,
    });
    expect(load([], { INTAKE_MAX_CONNECTIONS_PER_SOURCE: '8' }).intake.maxConnectionsPerSource).toBe(8);
    expect(() => load(['--intake-max-connections-per-source=-1'])).toThrow(/whole number/);
    expect(() => load(['--intake-max-connections=0'])).toThrow(/positive integer/);
  });
});

describe('--required-target-tag', () => {
  test('defaults to the tag the shipped IAM policy requires', () => {
    expect(load([]).requiredTargetTag).toEqual({ key: 'remediator.dev/managed', value: 'true' });
  });

  test('takes key=value from the flag or REQUIRED_TARGET_TAG; empty turns the check off', () => {
    expect(load(['--required-target-tag', 'owner=sre']).requiredTargetTag).toEqual({ key: 'owner', value: 'sre' });
    expect(load([], { REQUIRED_TARGET_TAG: 'ssm=' }).requiredTargetTag).toEqual({ key: 'ssm', value: '' });
    expect(load(['--required-target-tag=']).requiredTargetTag).toBeUndefined();
    expect(load([], { REQUIRED_TARGET_TAG: '' }).requiredTargetTag).toBeUndefined();
  });

  test('refuses a value without a key', () => {
    expect(() => load(['--required-target-tag', 'managed'])).toThrow(/key=value/);
    expect(() => load(['--required-target-tag', '=true'])).toThrow(/key=value/);
  });
});

describe('duration flags: the one grammar of src/api/v1alpha1/duration.ts', () => {
  test('the defaults docs/operations.md documents, and compound durations', () => {
    const c = load([]);
    expect(c.retention.ttlAfterFinishedMs).toBe(24 * 3_600_000);
    expect(c.intake).toMatchObject({ retryTimeoutMs: 5_000, tokenTtlMs: 10_000, dedupWindowMs: 3_600_000 });
    expect(load(['--intake-dedup-window=1h30m']).intake.dedupWindowMs).toBe(5_400_000);
    expect(load([], { INTAKE_RETRY_TIMEOUT: '500ms' }).intake.retryTimeoutMs).toBe(500);
  });

  test('0 only where documented: retention deletes finished requests at once', () => {
    expect(load(['--retention-ttl-after-finished=0']).retention.ttlAfterFinishedMs).toBe(0);
    expect(() => load(['--intake-token-ttl=0'])).toThrow(/positive duration/);
    expect(() => load(['--intake-token-ttl=0s'])).toThrow(/positive duration/);
  });

  test('a bare number is refused with the fix, not read as milliseconds', () => {
    expect(() => load(['--intake-retry-timeout=5000'])).toThrow(
      '--intake-retry-timeout needs a unit (ms, s, m or h), e.g. 5000ms or 5000s',
    );
    expect(() => load(['--intake-dedup-window=1d'])).toThrow(/positive duration/);
  });
});

describe('--list-page-size', () => {
  test("client-go's 500 by default; a positive whole number from the flag or LIST_PAGE_SIZE", () => {
    expect(load([]).listPageSize).toBe(500);
    expect(load(['--list-page-size=100']).listPageSize).toBe(100);
    expect(load([], { LIST_PAGE_SIZE: '250' }).listPageSize).toBe(250);
    expect(() => load(['--list-page-size=0'])).toThrow(/positive integer/);
  });
});

describe('--audit-sink', () => {
  const load = (env: NodeJS.ProcessEnv, argv: string[] = []) => (loadConfig(argv, env) as ControllerConfig).audit;

  test('none by default; each sink with what it needs, from flags or env', () => {
    expect(load({})).toBeUndefined();
    expect(load({ AUDIT_SINK: 'cloudwatch-logs', AUDIT_LOG_GROUP: '/remediator/audit' })).toEqual({
      type: 'cloudwatch-logs',
      logGroup: '/remediator/audit',
    });
    // A prefix is a folder: records go under <prefix><namespace>/.
    expect(load({}, ['--audit-sink=s3', '--audit-bucket=acme-audit', '--audit-prefix=prod', '--audit-region=eu-west-1'])).toEqual({
      type: 's3',
      bucket: 'acme-audit',
      prefix: 'prod/',
      region: 'eu-west-1',
    });
  });

  test('a sink without its destination, or an unknown sink, fails at start-up saying what to set', () => {
    expect(() => load({ AUDIT_SINK: 'cloudwatch-logs' })).toThrow(/needs --audit-log-group/);
    expect(() => load({ AUDIT_SINK: 's3', AUDIT_BUCKET: 'No_Such' })).toThrow(/needs --audit-bucket/);
    expect(() => load({ AUDIT_SINK: 'syslog' })).toThrow(/none, cloudwatch-logs, s3/);
  });
});
