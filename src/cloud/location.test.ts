import { alertLocation, type AlertOrigin, type RunbookReach } from './location.js';

const OWN = '111111111111';
const OTHER = '222222222222';
const home: RunbookReach = { name: 'restart', regions: ['eu-west-1'] };
const away: RunbookReach = { name: 'restart-b', regions: ['eu-west-1'], roleArn: `arn:aws:iam::${OTHER}:role/remediator` };
const alarm = (account: string | undefined, region: string | undefined) => ({
  source: 'cloudwatch',
  ...(account !== undefined && { account }),
  ...(region !== undefined && { region }),
});

describe('alertLocation: an alarm acts only where it comes from', () => {
  test("a runbook without scope.account acts in the controller's own account, checked like any other", () => {
    expect(alertLocation(alarm(OWN, 'eu-west-1'), home, OWN)).toEqual({ ok: true, region: 'eu-west-1' });
    expect(alertLocation(alarm(OTHER, 'eu-west-1'), home, OWN)).toMatchObject({
      ok: false,
      reason: 'LocationNotAllowed',
      message: expect.stringContaining(`account ${OTHER}, and Runbook "restart" acts in the controller's own account ${OWN}`),
    });
  });

  test('an own account that is not known refuses an alert that names an account', () => {
    expect(alertLocation(alarm(OWN, 'eu-west-1'), home, undefined)).toMatchObject({ ok: false, reason: 'AlertLocationUnknown' });
  });

  test("a runbook with scope.account acts in its role's account", () => {
    expect(alertLocation(alarm(OTHER, 'eu-west-1'), away, OWN)).toEqual({ ok: true, region: 'eu-west-1' });
    expect(alertLocation(alarm(OWN, 'eu-west-1'), away, OWN)).toMatchObject({ ok: false, reason: 'LocationNotAllowed' });
  });

  test.each([
    ['no account', undefined, 'eu-west-1'],
    ['no region', OWN, undefined],
    ['an empty account', '', 'eu-west-1'],
    ['a malformed account', '11111111111x', 'eu-west-1'],
    ['an upper-case region', OWN, 'EU-WEST-1'],
  ])('a CloudWatch alert with %s is refused, never treated as "anywhere"', (_what, account, region) => {
    expect(alertLocation(alarm(account, region), home, OWN)).toMatchObject({ ok: false, reason: 'AlertLocationUnknown' });
  });

  test('a CloudWatch alert whose labels or alarm ARN say another place is refused', () => {
    const ok = { ...alarm(OWN, 'eu-west-1'), labels: { aws_account_id: OWN, aws_region: 'eu-west-1' } };
    expect(alertLocation({ ...ok, annotations: { alarm_arn: `arn:aws:cloudwatch:eu-west-1:${OWN}:alarm:x` } }, home, OWN)).toMatchObject({
      ok: true,
    });
    const cases: AlertOrigin[] = [
      { ...ok, labels: { aws_account_id: OTHER } },
      { ...ok, labels: { aws_region: 'us-east-1' } },
      { ...ok, annotations: { alarm_arn: `arn:aws:cloudwatch:eu-west-1:${OTHER}:alarm:x` } },
      { ...ok, annotations: { alarm_arn: 'not-an-arn' } },
    ];
    for (const bad of cases) expect(alertLocation(bad, home, OWN)).toMatchObject({ ok: false, reason: 'AlertLocationUnknown' });
  });

  test('a region outside the runbook is refused; an alert without a place runs in the runbook’s first region', () => {
    expect(alertLocation(alarm(OWN, 'us-east-2'), home, OWN)).toMatchObject({ ok: false, reason: 'LocationNotAllowed' });
    expect(alertLocation({ source: 'alertmanager' }, home, undefined)).toEqual({ ok: true, region: 'eu-west-1' });
  });
});
