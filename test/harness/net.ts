// Loopback-only helpers: free ports and HTTPS/HTTP GETs (waiting lives in wait.ts).
import https from 'node:https';
import http from 'node:http';

export { freePort, freePorts } from './free-port.js';

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
