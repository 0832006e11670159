/**
 * The intake's answer when it will not (or cannot) accept a payload: an HTTP status, an
 * `outcome` for metrics, and a message that tells the sender what was wrong and what to
 * do. Parsers and the processor throw these; the server turns them into
 * `{ "error": message }` JSON bodies. Anything else thrown is a bug and becomes a 500.
 */
export type Outcome =
  | 'ok'
  | 'bad_request'
  | 'unsupported_media_type'
  | 'too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'overloaded'
  | 'unavailable'
  | 'error';

export class IntakeError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly outcome: Outcome = outcomeOf(status),
    readonly details?: string[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'IntakeError';
  }
}

export function outcomeOf(status: number): Outcome {
  switch (status) {
    case 400:
    case 422:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 413:
      return 'too_large';
    case 415:
      return 'unsupported_media_type';
    case 429:
      return 'overloaded';
    case 503:
      return 'unavailable';
    default:
      return status < 400 ? 'ok' : 'error';
  }
}

/** The Kubernetes API could not be reached (or kept failing) within the retry budget: answer 503, the sender retries. */
export class ApiUnavailableError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'ApiUnavailableError';
  }
}
