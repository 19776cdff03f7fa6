// The webhook floor: the least any admission webhook on Node can do per review. A plain node:https server with the
// same certificate as the product that reads the body, JSON.parses it and sends the answer. With --responses FILE
// (the bench's default) the answer is asm-cni's own precomputed answer to that review (looked up by uid): any webhook
// must send those bytes, so the floor pays for them too. Without it, a fixed allowed AdmissionReview echoing the uid.
// No routing, validation, logging or rewrite. Run as its own process: node floor-webhook.js --port N --cert F --key F
// [--host H] [--responses FILE]; prints "listening <port>" when ready.
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    cert: { type: 'string' },
    key: { type: 'string' },
    responses: { type: 'string' },
  },
});
/** uid -> the exact answer body asm-cni gave to that review. */
const precomputed = new Map<string, string>(
  values.responses
    ? (JSON.parse(readFileSync(values.responses, 'utf8')) as Array<{ uid: string; body: string }>).map((r) => [
        r.uid,
        r.body,
      ])
    : [],
);
if (!values.cert || !values.key) {
  console.error('floor-webhook: --cert and --key are required');
  process.exit(2);
}

const server = createServer({ cert: readFileSync(values.cert), key: readFileSync(values.key) }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let uid: string;
    try {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request?: { uid?: unknown } };
      const raw = review.request?.uid;
      uid = typeof raw === 'string' ? raw : '';
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad json');
      return;
    }
    const body =
      precomputed.get(uid) ??
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: { uid, allowed: true },
      });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
// Same keep-alive behaviour a long-lived API server connection gets from Fastify's defaults.
server.keepAliveTimeout = 72_000;
server.listen(Number(values.port), values.host, () => {
  const addr = server.address();
  process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : values.port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
