/**
 * `kubectl remediator ui`: a small web server on 127.0.0.1 that shows the user's inbox
 * and requests and writes their decisions, acting with the user's own kubeconfig
 * credentials, as `kubectl proxy` does. No server runs in the cluster and no credential
 * is created: every read and write is the user's own call, judged by the API server's
 * RBAC and the admission policy exactly as from kubectl, and decisions go through the
 * same function as `kubectl remediator approve` (client.ts `decide`).
 *
 * Because the page holds the user's credentials, any other page in the same browser,
 * or another local user, must not be able to drive it:
 *  - it listens on 127.0.0.1 only;
 *  - every URL carries a random per-launch token (256 bits) as its first path segment,
 *    compared in constant time; without it the answer is 404. No cookie: nothing is
 *    sent along by the browser on its own, so a cross-site form cannot ride on it;
 *  - the Host header must name this server (127.0.0.1:<port> or localhost:<port>),
 *    which defeats DNS rebinding; a POST must carry an Origin of this server and,
 *    when the browser says so, Sec-Fetch-Site same-origin;
 *  - a strict Content-Security-Policy (no script at all, styles from this server,
 *    forms only to it, no framing), a same-origin referrer policy so the token
 *    never leaves in a Referer (not no-referrer: with it, Chromium sends
 *    `Origin: null` on the page's own form posts), no caching; and every value shown is escaped (pages.ts, html.ts).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RemediationRequest } from '../../api/v1alpha1/index.js';
import { apiMessage, type Client, type Decision, decide, PluginError, statusCode } from '../client.js';
import type { HistorySource } from './history.js';
import { allPage, CSS, errorPage, type Flash, historyPage, type InboxItem, inboxPage, type Layout, requestPage } from './pages.js';
import { PlanMemory } from './plan-memory.js';
import { timeline } from './timeline.js';

export interface UiOptions {
  client: Client;
  /** List across all namespaces the user may read (-A), or only the client's namespace. */
  allNamespaces: boolean;
  /** 0 picks a free port. */
  port: number;
  now: () => number;
  history?: HistorySource;
}

export interface RunningUi {
  /** The page's address, token included. */
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 16 * 1024;

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
  'Cache-Control': 'no-store',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** A refusal of the page itself (not of the API server), with the status to answer. */
class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Page = { status: number; type: string; body: string };
const ok = (body: string): Page => ({ status: 200, type: 'text/html; charset=utf-8', body });

function newestFirst(list: RemediationRequest[]): RemediationRequest[] {
  return list.sort((a, b) => (b.metadata?.creationTimestamp ?? '').localeCompare(a.metadata?.creationTimestamp ?? ''));
}

/** The decision a request's page posted, as `decide` takes it. */
async function postedDecision(req: IncomingMessage, namespace: string, name: string): Promise<Decision> {
  const form = await readForm(req);
  const decision = form.get('decision');
  if (decision !== 'Approved' && decision !== 'Rejected') throw new Refused(400, 'decision must be Approved or Rejected');
  const reason = form.get('reason')?.trim().slice(0, 1024);
  return {
    namespace,
    name,
    decision,
    ...(reason ? { reason } : {}),
    // The digest this page showed; without one, the CRD refuses the approval.
    ...(decision === 'Approved' ? { shownDigest: form.get('planDigest') ?? '' } : {}),
  };
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      reject(new Refused(415, 'expected a form'));
      return;
    }
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Refused(413, 'form too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

export async function serveUi(opts: UiOptions): Promise<RunningUi> {
  const token = randomBytes(32).toString('base64url');
  const tokenBytes = Buffer.from(token);
  const base = `/${token}`;
  const client = opts.client;
  const plans = new PlanMemory();
  const me = await client.whoami();
  const scope = opts.allNamespaces ? 'all namespaces' : `namespace ${client.namespace}`;
  let port = 0;
  const layout = (): Layout => ({ base, user: me.username, scope, now: opts.now() });

  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);

  /** The path below the token, or a Refused: wrong host, wrong token, cross-site write. */
  function check(req: IncomingMessage): string {
    const host = req.headers.host ?? '';
    if (!allowedHosts().has(host)) throw new Refused(421, 'this server answers only to 127.0.0.1 and localhost');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const given = Buffer.from(path.split('/')[1] ?? '');
    if (given.length !== tokenBytes.length || !timingSafeEqual(given, tokenBytes)) throw new Refused(404, 'not found');
    if (req.method === 'POST') {
      if (req.headers.origin !== `http://${host}`) throw new Refused(403, 'cross-origin request refused');
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') throw new Refused(403, 'cross-site request refused');
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new Refused(405, 'method not allowed');
    }
    return path.slice(base.length).replace(/\/+$/, '') || '/';
  }

  /**
   * Per page load, what decides whether this user may approve: the approve verb in a
   * namespace (the API server's authorizer answers) and a policy's list of approvers
   * (the controller turns an approval by anyone else into a rejection).
   */
  interface Checks {
    mayApprove(ns: string): Promise<boolean>;
    approvers(ns: string, policy: string): Promise<string[] | undefined>;
  }
  function checks(): Checks {
    const verbs = new Map<string, Promise<boolean>>();
    const policies = new Map<string, Promise<string[] | undefined>>();
    return {
      mayApprove: (ns) => {
        if (!verbs.has(ns))
          verbs.set(
            ns,
            client.canI('approve', ns).catch(() => false),
          );
        return verbs.get(ns)!;
      },
      approvers: (ns, policy) => {
        const key = `${ns}/${policy}`;
        if (!policies.has(key)) {
          policies.set(
            key,
            client.policy(policy, ns).then(
              (p) => p?.spec.approval?.approvers,
              () => undefined,
            ),
          );
        }
        return policies.get(key)!;
      },
    };
  }

  async function blockedReason(rr: RemediationRequest, c: Checks): Promise<string | undefined> {
    const ns = rr.metadata?.namespace ?? '';
    if (!(await c.mayApprove(ns))) return `you lack the "approve" verb on remediationrequests in namespace ${ns}`;
    const allowed = await c.approvers(ns, rr.spec.policyRef.name);
    if (allowed && allowed.length > 0 && !allowed.includes(me.username)) {
      return `policy ${rr.spec.policyRef.name} allows only ${allowed.join(', ')} to approve (the controller rejects anyone else's approval)`;
    }
    const r = rr.status?.risk;
    if ((r === 'High' || r === 'Critical') && rr.spec.requestedBy === me.username) return `${r} risk needs four eyes and you requested it`;
    return undefined;
  }

  async function renderRequest(ns: string, name: string, flash?: Flash): Promise<string> {
    const rr = await client.get(name, ns);
    const events = await client.events(rr);
    const plan = rr.status?.plan;
    const planHistory = plan && rr.metadata?.uid ? plans.show(rr.metadata.uid, plan, opts.now()) : undefined;
    return requestPage(
      layout(),
      {
        rr,
        ...(planHistory ? { planHistory } : {}),
        timeline: timeline(rr, events),
        eventsReadable: events !== undefined,
        blocked: await blockedReason(rr, checks()),
      },
      flash,
    );
  }

  const items = async () => newestFirst(await client.list(opts.allNamespaces));

  async function inbox(): Promise<Page> {
    const c = checks();
    const waiting = (await items()).filter((rr) => rr.status?.phase === 'AwaitingApproval' && !rr.spec.approval);
    const list: InboxItem[] = [];
    for (const rr of waiting) {
      const blocked = await blockedReason(rr, c);
      list.push(blocked ? { rr, blocked } : { rr });
    }
    return ok(inboxPage(layout(), list));
  }

  async function history(): Promise<Page> {
    const h = opts.history;
    if (!h) return ok(historyPage(layout(), undefined, undefined));
    try {
      return ok(historyPage(layout(), h.description, await h.list(opts.allNamespaces ? undefined : client.namespace)));
    } catch (error) {
      return ok(historyPage(layout(), h.description, undefined, error instanceof Error ? error.message : String(error)));
    }
  }

  /** A decision posted from a request's page: written by `decide`, the plugin's one write path. */
  async function decidePosted(req: IncomingMessage, ns: string, name: string): Promise<Page> {
    const d = await postedDecision(req, ns, name);
    let flash: Flash;
    try {
      const { ref, username } = await decide(client, d);
      flash = { ok: true, message: `${ref} ${d.decision.toLowerCase()} by ${username}` };
    } catch (error) {
      if (!(error instanceof PluginError)) throw error;
      flash = { ok: false, message: error.message };
    }
    return ok(await renderRequest(ns, name, flash));
  }

  /** `/rr/<namespace>/<name>` (GET) and `/rr/<namespace>/<name>/decide` (POST); undefined for anything else. */
  async function requestRoute(req: IncomingMessage, path: string): Promise<Page | undefined> {
    const m = /^\/rr\/([a-z0-9-]{1,63})\/([a-z0-9.-]{1,253})(\/decide)?$/.exec(path);
    if (!m) return undefined;
    const [, ns, name, decideSuffix] = m as unknown as [string, string, string, string | undefined];
    if (!opts.allNamespaces && ns !== client.namespace) throw new Refused(404, `this page serves namespace ${client.namespace} only`);
    if (req.method === 'GET' && !decideSuffix) return ok(await renderRequest(ns, name));
    if (req.method === 'POST' && decideSuffix) return decidePosted(req, ns, name);
    return undefined;
  }

  async function route(req: IncomingMessage, path: string): Promise<Page> {
    if (path === '/app.css') return { status: 200, type: 'text/css; charset=utf-8', body: CSS };
    if (req.method === 'GET' && path === '/') return inbox();
    if (req.method === 'GET' && path === '/all') return ok(allPage(layout(), await items()));
    if (req.method === 'GET' && path === '/history') return history();
    const page = await requestRoute(req, path);
    if (page) return page;
    throw new Refused(404, 'not found');
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    let path: string;
    try {
      path = check(req);
    } catch (error) {
      // Before the token is checked, say nothing about the page.
      const r = error instanceof Refused ? error : new Refused(400, 'bad request');
      send(r.status, 'text/plain; charset=utf-8', `${r.message}\n`);
      return;
    }
    route(req, path).then(
      (r) => send(r.status, r.type, r.body),
      (error: unknown) => {
        if (error instanceof Refused) {
          send(error.status, 'text/html; charset=utf-8', errorPage(layout(), `Refused (${error.status})`, error.message));
          return;
        }
        const code = statusCode(error);
        const message =
          error instanceof PluginError
            ? error.message
            : code === 401
              ? 'the API server did not accept your credentials (HTTP 401); check your kubeconfig'
              : code !== undefined
                ? `the API server said: ${apiMessage(error)}`
                : error instanceof Error
                  ? error.message
                  : String(error);
        send(code === 403 ? 403 : 502, 'text/html; charset=utf-8', errorPage(layout(), 'Could not load this page', message));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${base}/`,
    // Browsers keep connections open; without closing them, close() would wait on them.
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
