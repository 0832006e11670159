/** Classifies AWS SDK errors into what the controllers act on. */
import { AwsAccessDeniedError } from './types.js';

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const ACCESS_DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'AuthorizationError', 'AuthorizationErrorException']);

/** Rewrites an access-denied SDK error into an `AwsAccessDeniedError` naming the IAM action; passes others through. */
export function classifyAwsError(error: unknown, iamAction: string): unknown {
  const e = error as SdkError;
  if (e && typeof e === 'object' && ACCESS_DENIED.has(e.name ?? '')) {
    return new AwsAccessDeniedError(iamAction, e.message ?? 'access denied');
  }
  return error;
}

export function awsErrorName(error: unknown): string | undefined {
  return (error as SdkError | undefined)?.name;
}
