// An admission client that behaves like the API server's webhook client: HTTPS keep-alive with a bounded pool, a
// per-call deadline, and a retry when the connection fails before any response arrived (refused, reset, or closed by
// the server while idle). Those are the failures a rolling restart causes and the API server's client re-sends.
import { request, Agent, type AgentOptions } from 'node:https';

export interface CallResult {
  status: number; // 0 = no response
  body: string;
  ms: number;
  /** attempts that failed at the connection level before the one that counted */
  retries: number;
  retryCauses: string[];
  error?: string;
  /** the Retry-After header of a 429 or 503 */
  retryAfter?: string;
}

const RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export function isRetryable(err: NodeJS.ErrnoException, gotResponse: boolean): boolean {
  if (gotResponse) return false;
  return (
    RETRYABLE.has(err.code ?? '') ||
    /socket hang up|other side closed|Client network socket disconnected/i.test(err.message)
  );
}

export interface ClientOptions {
  host: string;
  port: number;
  ca: string | string[];
  servername?: string;
  maxSockets?: number;
  cert?: string;
  key?: string;
  agent?: AgentOptions;
}

export class AdmissionClient {
  readonly agent: Agent;
  constructor(readonly opts: ClientOptions) {
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: opts.maxSockets ?? 8,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      servername: opts.servername ?? 'localhost',
      ...opts.agent,
    });
  }

  /** One attempt, no retry. */
  once(
    path: string,
    payload: string | Buffer,
    timeoutMs: number,
    method = 'POST',
    headers: Record<string, string> = { 'content-type': 'application/json' },
  ): Promise<CallResult> {
    const started = performance.now();
    return new Promise((resolve) => {
      let gotResponse = false;
      let settled = false;
      const done = (r: Omit<CallResult, 'ms' | 'retries' | 'retryCauses'>, retryable = false): void => {
        if (settled) return;
        settled = true;
        resolve({ ...r, ms: performance.now() - started, retries: 0, retryCauses: retryable ? ['retryable'] : [] });
      };
      const req = request(
        {
          host: this.opts.host,
          port: this.opts.port,
          path,
          method,
          agent: this.agent,
          headers: { ...headers, 'content-length': String(Buffer.byteLength(payload)) },
          timeout: timeoutMs,
        },
        (res) => {
          gotResponse = true;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          const retryAfter = res.headers['retry-after'];
          res.on('end', () =>
            done({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              ...(retryAfter === undefined ? {} : { retryAfter }),
            }),
          );
          res.on('error', (err) => done({ status: 0, body: '', error: `response: ${err.message}` }));
        },
      );
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        done({ status: 0, body: '', error: `${err.code ?? 'error'}: ${err.message}` }, isRetryable(err, gotResponse)),
      );
      req.end(payload);
    });
  }

  /** Like the API server: retry connection-level failures with a short backoff until `deadlineMs` is spent. */
  async call(path: string, payload: string, deadlineMs = 10_000): Promise<CallResult> {
    const started = performance.now();
    const causes: string[] = [];
    let backoff = 10;
    for (;;) {
      const left = deadlineMs - (performance.now() - started);
      const r = await this.once(path, payload, Math.max(1, left));
      const retryable = r.retryCauses.length > 0;
      if (!retryable || performance.now() - started + backoff >= deadlineMs) {
        return { ...r, ms: performance.now() - started, retries: causes.length, retryCauses: causes };
      }
      causes.push(r.error ?? 'connection failed');
      await new Promise((res) => setTimeout(res, backoff));
      backoff = Math.min(backoff * 2, 200);
    }
  }

  close(): void {
    this.agent.destroy();
  }
}
