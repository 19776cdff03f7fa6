// /readyz (DaemonSet readiness probe), /healthz (liveness) and /metrics on one small HTTP listener.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Readiness } from './installer.js';

export function createHealthServer(readiness: () => Promise<Readiness>, registry: Registry): Server {
  return createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    if (url === '/healthz') return reply(200, 'ok\n');
    if (url === '/readyz') {
      readiness().then(
        (r) =>
          reply(r.ready ? 200 : 503, r.ready ? 'ok\n' : `not ready:\n${r.reasons.map((x) => `- ${x}`).join('\n')}\n`),
        (err: Error) => reply(503, `not ready: ${err.message}\n`),
      );
      return;
    }
    if (url === '/metrics') {
      registry.metrics().then(
        (text) => reply(200, text, registry.contentType),
        (err: Error) => reply(500, `${err.message}\n`),
      );
      return;
    }
    reply(404, 'not found\n');
  });
}
