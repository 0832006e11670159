/**
 * HTTP plumbing for the intake: reading a size-capped body, checking the content type,
 * and answering JSON. Kept apart from the routes so each rule lives in one place:
 * a body is never buffered past its cap (a declared Content-Length over it is refused
 * before a byte is read; a chunked body is cut off as soon as it passes it), and an
 * unread body is drained only up to a bound before the connection is dropped, so a
 * well-behaved client still reads our answer and an abusive one cannot keep us busy. A
 * client that sends `Expect: 100-continue` is told to go on only once every check that
 * needs no body (route, authentication, content type, declared size) has passed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IntakeError } from './errors.js';

/**
 * How much of an unwanted body we read (and discard) after answering early. Closing a
 * connection while the client is still sending makes the kernel reset it, and a reset
 * can destroy our answer before the client reads it; so the rest of a moderately
 * oversized body is read and dropped, and only a body beyond this gets the connection cut.
 */
export const DRAIN_LIMIT_BYTES = 4 * 1024 * 1024;

const continued = new WeakSet<IncomingMessage>();
const expectsContinue = (req: IncomingMessage) => /^100-continue$/i.test(req.headers.expect ?? '');

/**
 * Headers for an answer given before the body was read: close the connection when
 * draining the body would cost too much, or when the client is waiting for a 100 it will
 * not get (it may never send the body, and the connection could not be reused safely).
 */
export function earlyAnswerHeaders(req: IncomingMessage): Record<string, string> {
  if (req.complete) return {};
  if (expectsContinue(req) && !continued.has(req)) return { connection: 'close' };
  const declared = Number(req.headers['content-length'] ?? 0);
  return declared > DRAIN_LIMIT_BYTES ? { connection: 'close' } : {};
}

/** Answers `Expect: 100-continue` when the body is really wanted, so a client that asked first sends it. */
function acceptBody(req: IncomingMessage, res: ServerResponse): void {
  if (expectsContinue(req) && !res.headersSent && !continued.has(req)) {
    continued.add(req);
    res.writeContinue();
  }
}

/**
 * Reads the body, refusing (413) one declared or found to be over `maxBytes`; answers
 * `Expect: 100-continue` only for a body it will read. With `timeoutMs`, a body not
 * complete by then is refused with 408 and `Connection: close` (the server's own
 * request timeout is far longer, fit for authenticated senders).
 */
export function readBody(req: IncomingMessage, res: ServerResponse, maxBytes: number, timeoutMs?: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge(maxBytes));
  }
  acceptBody(req, res);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            req.pause();
            finish(
              new IntakeError(408, `the request body did not arrive within ${timeoutMs} ms; send it at once`, 'bad_request', undefined, {
                connection: 'close',
              }),
            );
          }, timeoutMs).unref();
    const finish = (error?: IntakeError) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      req.off('close', onClose);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        // Stop buffering; the caller answers 413 and drains the rest (bounded).
        req.pause();
        finish(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onError = () => finish(new IntakeError(400, 'the request body could not be read (connection error)'));
    const onAborted = () => finish(new IntakeError(400, 'the request was aborted before its body was complete'));
    // The connection went away mid-body: stop waiting (and drop the timer) at once.
    const onClose = () => (req.complete ? finish() : onAborted());
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
    req.on('close', onClose);
  });
}

function tooLarge(maxBytes: number): IntakeError {
  return new IntakeError(
    413,
    `request body is larger than ${maxBytes} bytes; send fewer alerts per request (Alertmanager: max_alerts in webhook_config)`,
  );
}

/**
 * Requires a JSON media type (`application/json`, or `text/plain` where `allowText`,
 * which is what SNS sends) in UTF-8, and no content encoding.
 */
export function checkContentType(req: IncomingMessage, allowText: boolean): void {
  const raw = req.headers['content-type'];
  const accepted = allowText ? 'application/json or text/plain' : 'application/json';
  if (!raw) throw new IntakeError(415, `missing Content-Type: send ${accepted}`);
  const [type, ...params] = raw.split(';').map((s) => s.trim().toLowerCase());
  if (type !== 'application/json' && !(allowText && type === 'text/plain')) {
    throw new IntakeError(415, `unsupported Content-Type ${JSON.stringify(raw.slice(0, 100))}: send ${accepted}`);
  }
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new IntakeError(415, `unsupported charset ${JSON.stringify(charset.slice(0, 40))}: send UTF-8`);
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new IntakeError(415, `unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 40))}: send the body uncompressed`);
  }
}

/** Parses a UTF-8 JSON body; 400 with the parser's complaint when it is not JSON. */
export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new IntakeError(400, 'empty request body: send a JSON document');
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let s: string;
  try {
    s = text.decode(body);
  } catch {
    throw new IntakeError(400, 'request body is not valid UTF-8: send UTF-8 encoded JSON');
  }
  try {
    return JSON.parse(s) as unknown;
  } catch (error) {
    throw new IntakeError(400, `request body is not valid JSON (${(error as Error).message.slice(0, 200)}); check the payload`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/**
 * After answering before (all of) the body was read: keep reading and discarding up to
 * DRAIN_LIMIT_BYTES, so the client is not reset mid-upload and sees the answer, then
 * drop the connection if it keeps sending. A client that asked `Expect: 100-continue`
 * and was refused never sends the body; nothing is read then.
 */
export function drainRequest(req: IncomingMessage): void {
  if (req.complete || req.destroyed) return;
  let drained = 0;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_LIMIT_BYTES) req.socket.destroy();
  });
  req.on('error', () => undefined);
  req.resume();
}

/**
 * Before answering 413 to a client still uploading: read and drop what it sends until it
 * pauses (QUIET_MS without data), ends, or passes DRAIN_LIMIT_BYTES, at most
 * QUIET_MAX_MS. Closing a connection with unread data makes the kernel reset it, and a
 * reset discards the answer the client has not read yet; with the receive buffer empty
 * the close is a plain FIN and the client reads its 413.
 */
const QUIET_MS = 200;
const QUIET_MAX_MS = 2_000;
export function untilUploadPauses(req: IncomingMessage): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let drained = 0;
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(cap);
      req.off('data', onData);
      req.off('end', done);
      req.off('close', done);
      resolve();
    };
    const arm = () => {
      clearTimeout(quiet);
      quiet = setTimeout(done, QUIET_MS);
    };
    const onData = (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > DRAIN_LIMIT_BYTES) done();
      else arm();
    };
    const cap = setTimeout(done, QUIET_MAX_MS);
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.on('error', () => undefined);
    arm();
    req.resume();
  });
}

/**
 * How long a client gets to read an answer sent with `Connection: close` before its socket
 * is destroyed. Destroying sends a reset, and a reset discards what the client has not read
 * yet: a busy client must have time to read the answer. A client that honours the close
 * (it sees our FIN) is gone long before.
 */
export const CLOSE_GRACE_MS = 5_000;

/**
 * Closes the connection once an answer sent with `Connection: close` (a 408, a 413) has
 * been written: half-close at once, so the client reads the answer and sees the end, then
 * destroy the socket if it is still open a moment later. Node alone keeps such a socket
 * open while the client goes on trickling a body it will never finish.
 */
export function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  const close = () => {
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  };
  if (res.writableFinished) close();
  else res.once('finish', close);
}
