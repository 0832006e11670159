import { Metrics } from '../observability/metrics.js';
import { RefreshingCredentials, type Credentials } from './credentials.js';
import {
  AwsAssumeRoleDeniedError,
  AwsLocationAccessDeniedError,
  accountOfRoleArn,
  locationKey,
  roleSessionName,
  sessionTagsFor,
} from './location.js';
import { CloudPool } from './pool.js';
import { AwsAccessDeniedError } from './types.js';

const MIN = 60_000;

describe('RefreshingCredentials', () => {
  test('serves cached credentials, and fetches new ones 5 minutes before they expire', async () => {
    let now = 1_000_000;
    let fetches = 0;
    const creds = new RefreshingCredentials(
      async (): Promise<Credentials> => {
        fetches++;
        return { accessKeyId: `AKIA${fetches}`, secretAccessKey: 's', expiration: new Date(now + 15 * MIN) };
      },
      { now: () => now },
    );
    expect((await creds.provide()).accessKeyId).toBe('AKIA1');
    now += 9 * MIN; // 6 minutes left
    expect((await creds.provide()).accessKeyId).toBe('AKIA1');
    now += 2 * MIN; // 4 minutes left: inside the refresh window, still valid
    expect((await creds.provide()).accessKeyId).toBe('AKIA2');
    expect(fetches).toBe(2);
  });

  test('concurrent callers share one fetch; a failure is not cached', async () => {
    let fetches = 0;
    let fail = true;
    const creds = new RefreshingCredentials(async (): Promise<Credentials> => {
      fetches++;
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw new Error('denied');
      return { accessKeyId: 'AKIA', secretAccessKey: 's', expiration: new Date(Date.now() + 60 * MIN) };
    });
    await expect(Promise.all([creds.provide(), creds.provide(), creds.provide()])).rejects.toThrow('denied');
    expect(fetches).toBe(1);
    fail = false;
    await expect(creds.provide()).resolves.toMatchObject({ accessKeyId: 'AKIA' });
    expect(fetches).toBe(2);
  });
});

describe('locations', () => {
  test('session tags use keys STS and IAM policy variables accept, and refuse values STS would', () => {
    expect(sessionTagsFor('web', 'restart-nginx')).toEqual({ 'remediator-namespace': 'web', 'remediator-policy': 'restart-nginx' });
    expect(() => sessionTagsFor('web', 'a;rm -rf')).toThrow(/STS session tag/);
  });

  test('a role ARN names its account; anything else is refused with what is expected', () => {
    expect(accountOfRoleArn('arn:aws:iam::222222222222:role/remediator-workload')).toBe('222222222222');
    expect(accountOfRoleArn('arn:aws-cn:iam::333333333333:role/path/x')).toBe('333333333333');
    expect(() => accountOfRoleArn('arn:aws:iam::2222:user/x')).toThrow(/12-digit account/);
  });

  test('keys separate region, role, external id and tags; tag order does not matter', () => {
    const a = { region: 'eu-west-1', roleArn: 'arn:aws:iam::222222222222:role/x', sessionTags: { a: '1', b: '2' } };
    expect(locationKey(a)).toBe(locationKey({ ...a, sessionTags: { b: '2', a: '1' } }));
    expect(locationKey(a)).not.toBe(locationKey({ ...a, region: 'us-east-1' }));
    expect(locationKey(a)).not.toBe(locationKey({ ...a, externalId: 'e' }));
    expect(locationKey(a)).not.toBe(locationKey({ ...a, sessionTags: { a: '1' } }));
    expect(roleSessionName({ ...a, sessionTags: sessionTagsFor('x'.repeat(63), 'p') })).toHaveLength(64);
  });

  test('location errors are still access-denied errors, and say where and whose role', () => {
    const e = new AwsLocationAccessDeniedError('ssm:SendCommand', 'not authorized', {
      region: 'eu-west-1',
      account: '222222222222',
      roleArn: 'arn:aws:iam::222222222222:role/x',
    });
    expect(e).toBeInstanceOf(AwsAccessDeniedError);
    expect(e.iamAction).toBe('ssm:SendCommand');
    expect(e.message).toContain('account 222222222222 in eu-west-1 (through role arn:aws:iam::222222222222:role/x)');
    expect(e.message).toContain('workload-role-policy.json');
    const d = new AwsAssumeRoleDeniedError('arn:aws:iam::222222222222:role/x', 'no', true);
    expect(d).toBeInstanceOf(AwsAccessDeniedError);
    expect(d.account).toBe('222222222222');
    expect(d.message).toMatch(/^AWS denied sts:AssumeRole on arn:aws:iam::222222222222:role\/x \(account 222222222222\)/);
  });
});

describe('CloudPool', () => {
  const base = async (): Promise<Credentials> => ({ accessKeyId: 'AKIABASE', secretAccessKey: 's' });

  test('one client set per account and region, bounded, least recently used out first', () => {
    let now = 0;
    const clock = { now: () => now };
    const pool = new CloudPool({ homeRegion: 'eu-west-1', metrics: new Metrics(), baseCredentials: base, maxLocations: 3, clock });
    try {
      const loc = (ns: string, region = 'eu-west-1') => ({
        region,
        roleArn: 'arn:aws:iam::222222222222:role/x',
        sessionTags: sessionTagsFor(ns, 'p'),
      });
      const first = pool.forLocation(loc('a'));
      expect(pool.forLocation(loc('a'))).toBe(first);
      expect(pool.forLocation(loc('a', 'us-east-1'))).not.toBe(first);
      pool.forLocation(loc('b'));
      pool.forLocation(loc('a')); // a is now the most recent
      for (let i = 0; i < 50; i++) pool.forLocation(loc(`ns${i}`));
      expect(pool.size).toBe(3);
      // Idle entries expire.
      now += 31 * MIN;
      pool.forLocation(loc('z'));
      expect(pool.size).toBe(1);
      expect(() => pool.forLocation({ region: 'eu-west-1', roleArn: 'not-an-arn' })).toThrow(/not an IAM role ARN/);
    } finally {
      pool.destroy();
    }
  });

  test('identity of an assumed role comes from its ARN, without calling AWS', async () => {
    const pool = new CloudPool({ homeRegion: 'eu-west-1', metrics: new Metrics(), baseCredentials: base });
    try {
      await expect(pool.identity({ roleArn: 'arn:aws:iam::222222222222:role/x' })).resolves.toEqual({
        account: '222222222222',
        arn: 'arn:aws:iam::222222222222:role/x',
      });
    } finally {
      pool.destroy();
    }
  });
});
