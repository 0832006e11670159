/** Classifies AWS SDK errors into what the controllers act on. */
import { AwsAccessDeniedError } from './types.js';

interface SdkError {
  name?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

const ACCESS_DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'AuthorizationError',
  'AuthorizationErrorException',
]);

/** Rewrites an access-denied SDK error into an `AwsAccessDeniedError` naming the IAM action; passes others through. */
export function classifyAwsError(error: unknown, iamAction: string): unknown {
  const e = error as SdkError;
  if (e && typeof e === 'object' && ACCESS_DENIED.has(e.name ?? '')) {
    return new AwsAccessDeniedError(iamAction, e.message ?? 'access denied');
  }
  return error;
}

const THROTTLING = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
]);

/** The `outcome` label of `remediator_aws_api_calls_total` for a failed call (after the SDK's own retries). */
export function callOutcome(error: unknown): 'throttled' | 'access_denied' | 'error' {
  const name = (error as SdkError | undefined)?.name ?? '';
  if (ACCESS_DENIED.has(name)) return 'access_denied';
  if (THROTTLING.has(name)) return 'throttled';
  return 'error';
}

export function awsErrorName(error: unknown): string | undefined {
  return (error as SdkError | undefined)?.name;
}

/**
 * AWS rejected the request itself (`$fault: client`: a bad parameter, an unknown
 * instance or document, a missing topic) — not throttling, not a permission that may
 * be granted later. Retrying the same request cannot succeed.
 */
export function isPermanentAwsError(error: unknown): boolean {
  const e = error as SdkError | undefined;
  if (!e || typeof e !== 'object' || e.$fault !== 'client') return false;
  const name = e.name ?? '';
  return !ACCESS_DENIED.has(name) && !THROTTLING.has(name) && name !== 'ExpiredTokenException' && name !== 'InvalidClientTokenId';
}

/**
 * One AWS call, counted by outcome and with its error classified (the IAM action named
 * when access is denied): the audit sinks' shared way to call (logs.ts, s3.ts).
 */
export async function countedCall<T>(
  onCall: (operation: string, outcome: string) => void,
  operation: string,
  iamAction: string,
  send: () => Promise<T>,
): Promise<T> {
  try {
    const out = await send();
    onCall(operation, 'success');
    return out;
  } catch (error) {
    onCall(operation, callOutcome(error));
    throw classifyAwsError(error, iamAction);
  }
}
