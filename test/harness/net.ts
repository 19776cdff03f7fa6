// Loopback-only helpers: free ports, HTTPS/HTTP GETs and polling.
import https from 'node:https';
import http from 'node:http';

export { freePort } from './free-port.js';

export interface HttpAnswer {
  status: number;
  body: string;
}

/** GET over http or https (the scheme decides), collecting the body as text. */
function get(url: string, options: https.RequestOptions, timeoutMs: number): Promise<HttpAnswer> {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { ...options, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout GET ${url}`)));
    req.on('error', reject);
  });
}

export const httpsGet = (
  url: string,
  opts: { ca?: string | Buffer; token?: string; timeoutMs?: number } = {},
): Promise<HttpAnswer> =>
  get(
    url,
    { ca: opts.ca, headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} },
    opts.timeoutMs ?? 3000,
  );

export const httpGet = (url: string, timeoutMs = 3000): Promise<HttpAnswer> => get(url, {}, timeoutMs);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls check() until it returns a value other than undefined, or throws after timeoutMs with the last error seen.
 * `abort` lets the caller stop early (e.g. the process being waited for has exited).
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  opts: { timeoutMs?: number; intervalMs?: number; abort?: () => string | undefined } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let last = '';
  for (;;) {
    const aborted = opts.abort?.();
    if (aborted) throw new Error(`${what}: ${aborted}`);
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
    await sleep(opts.intervalMs ?? 250);
  }
}
