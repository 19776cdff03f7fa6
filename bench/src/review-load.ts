// Fixed-rate AdmissionReview load over a fixed pool of keep-alive TLS connections, paced by the harness's open loop
// (test/harness/open-loop.ts). Why not autocannon here: its rate limit sends each connection's per-second quota back to
// back at the start of every second (so "half the max" is really full speed for half a second), and its
// coordinated-omission correction works in whole milliseconds. Latency is measured in microseconds from each request's
// due time, so a request queued behind busy connections is charged its wait. Requests are pre-serialised buffers and
// responses are parsed just enough (status, Content-Length or chunked) to keep the client's cost per request small.
import { connect, type TLSSocket } from 'node:tls';
import type { ReviewPayload } from './fixtures.js';
import { openLoop } from '../../test/harness/open-loop.js';

export interface OpenLoopOptions {
  host: string;
  port: number;
  path: string;
  ca: Buffer;
  connections: number;
  /** Offered requests per second. */
  rate: number;
  durationSec: number;
  payloads: readonly ReviewPayload[];
  /** Check each answer: uid echoed and allowed; with `patch`, a patch exactly where the shape expects one. */
  verify: 'uid' | 'patch';
  /** Read just before the first request is due and once all are answered (e.g. the server's CPU): `metered` is the
   * difference, free of the connections' handshakes and close. */
  meter?: () => number;
}

export interface OpenLoopResult {
  offeredRate: number;
  sent: number;
  completed: number;
  non2xx: number;
  /** Answers that were 2xx but wrong (uid not echoed, not allowed, patch missing or unexpected). */
  mismatches: number;
  connErrors: number;
  /** Microseconds from the scheduled send time to the last byte of the answer, one per completed request. */
  latencyUs: Float64Array;
  elapsedSec: number;
  /** meter() at the end minus at the start; 0 without a meter. */
  metered: number;
}

interface Pending {
  payload: ReviewPayload;
  request: Buffer;
  scheduledNs: bigint;
  /** Settles the request in the open loop's books. */
  settle: () => void;
}

class Connection {
  private socket!: TLSSocket;
  private buf: Buffer = Buffer.alloc(0);
  private bodyStart = -1;
  private status = 0;
  private contentLength = -1;
  private chunked = false;
  current: Pending | null = null;
  closed = false;
  /** Resolves when the first TLS handshake is done. */
  readonly handshaken: Promise<void>;
  private onHandshake!: () => void;

  constructor(
    private readonly opts: OpenLoopOptions,
    private readonly onDone: (conn: Connection, p: Pending, status: number, body: Buffer | null) => void,
  ) {
    this.handshaken = new Promise((resolve) => (this.onHandshake = resolve));
    this.open();
  }

  private open(): void {
    this.socket = connect({ host: this.opts.host, port: this.opts.port, ca: this.opts.ca, servername: 'localhost' });
    this.socket.setNoDelay(true);
    this.socket.once('secureConnect', () => this.onHandshake());
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      const p = this.current;
      this.reset();
      this.buf = Buffer.alloc(0);
      this.current = null;
      if (p) this.onDone(this, p, 0, null);
      if (!this.closed) this.open();
    });
  }

  send(p: Pending): void {
    this.current = p;
    this.socket.write(p.request);
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private reset(): void {
    this.bodyStart = -1;
    this.status = 0;
    this.contentLength = -1;
    this.chunked = false;
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.bodyStart < 0) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.toString('latin1', 0, end);
      this.status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      this.contentLength = cl ? Number(cl[1]) : -1;
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      this.bodyStart = end + 4;
    }
    let body: Buffer | null;
    if (this.contentLength >= 0) {
      if (this.buf.length - this.bodyStart < this.contentLength) return;
      body = this.buf.subarray(this.bodyStart, this.bodyStart + this.contentLength);
    } else if (this.chunked) {
      body = this.dechunk();
      if (!body) return;
    } else {
      return; // no framing: the answer ends when the server closes (handled as an error in 'close')
    }
    const p = this.current!;
    const status = this.status;
    this.reset();
    this.buf = Buffer.alloc(0);
    this.current = null;
    this.onDone(this, p, status, body);
  }

  /** The whole chunked body once its terminating chunk has arrived, else null. */
  private dechunk(): Buffer | null {
    const parts: Buffer[] = [];
    let pos = this.bodyStart;
    for (;;) {
      const eol = this.buf.indexOf('\r\n', pos);
      if (eol < 0) return null;
      const size = parseInt(this.buf.toString('latin1', pos, eol), 16);
      if (size === 0) return this.buf.indexOf('\r\n\r\n', eol) >= 0 ? Buffer.concat(parts) : null;
      if (this.buf.length < eol + 2 + size + 2) return null;
      parts.push(this.buf.subarray(eol + 2, eol + 2 + size));
      pos = eol + 2 + size + 2;
    }
  }
}

export function requestBuffer(host: string, port: number, path: string, body: string): Buffer {
  const len = Buffer.byteLength(body);
  return Buffer.from(
    `POST ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nContent-Type: application/json\r\nAccept: application/json, */*\r\n` +
      `User-Agent: kube-apiserver-admission\r\nContent-Length: ${len}\r\n\r\n${body}`,
  );
}

export function answerMatches(p: ReviewPayload, body: Buffer, verify: 'uid' | 'patch'): boolean {
  let review: { response?: { uid?: unknown; allowed?: unknown; patch?: unknown; patchType?: unknown } };
  try {
    review = JSON.parse(body.toString('utf8'));
  } catch {
    return false;
  }
  const r = review.response;
  if (!r || r.uid !== p.uid || r.allowed !== true) return false;
  if (verify === 'uid') return true;
  const hasPatch = typeof r.patch === 'string' && r.patch.length > 0;
  return hasPatch === p.expectPatch && (!hasPatch || r.patchType === 'JSONPatch');
}

export async function runOpenLoop(opts: OpenLoopOptions): Promise<OpenLoopResult> {
  const requests = opts.payloads.map((p) => requestBuffer(opts.host, opts.port, opts.path, p.body));
  const latency = new Float64Array(Math.max(1, Math.round(opts.rate * opts.durationSec)));
  const queue: Pending[] = [];
  const idle: Connection[] = [];
  let completed = 0;
  let answered = 0;
  let non2xx = 0;
  let mismatches = 0;
  let connErrors = 0;

  const dispatch = (): void => {
    while (idle.length > 0 && queue.length > 0) idle.pop()!.send(queue.shift()!);
  };
  const onDone = (conn: Connection, p: Pending, status: number, body: Buffer | null): void => {
    const now = process.hrtime.bigint();
    answered++;
    if (status === 0) connErrors++;
    else if (status < 200 || status >= 300) non2xx++;
    else {
      if (opts.verify && body && !answerMatches(p.payload, body, opts.verify)) mismatches++;
      latency[completed++] = Number(now - p.scheduledNs) / 1000;
    }
    if (!conn.closed) idle.push(conn);
    p.settle();
    dispatch();
  };

  const conns: Connection[] = [];
  for (let i = 0; i < opts.connections; i++) conns.push(new Connection(opts, onDone));
  // Every connection finishes its TLS handshake before the clock starts (a connection refused for a second is
  // reopened; after that, what is not ready is left to the load).
  let waited: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(conns.map((c) => c.handshaken)), new Promise((r) => (waited = setTimeout(r, 1000)))]);
  clearTimeout(waited);
  idle.push(...conns);
  const meter0 = opts.meter?.() ?? 0;

  // Spinning pacer (the generator has a core of its own); bounded: a server that cannot keep up at all must not stall
  // the bench, and what is unanswered by then is an error.
  const run = await openLoop(
    { rate: opts.rate, seconds: opts.durationSec, tickMs: 0, settleMs: (opts.durationSec * 2 + 30) * 1000 },
    (i, dueNs) =>
      new Promise<void>((settle) => {
        queue.push({
          payload: opts.payloads[i % opts.payloads.length]!,
          request: requests[i % requests.length]!,
          scheduledNs: dueNs,
          settle,
        });
        dispatch();
      }),
  );
  const metered = (opts.meter?.() ?? 0) - meter0;
  for (const c of conns) c.close();
  return {
    offeredRate: opts.rate,
    sent: run.offered,
    completed,
    non2xx,
    mismatches,
    connErrors: connErrors + (run.offered - answered),
    latencyUs: latency.subarray(0, completed),
    elapsedSec: run.elapsedSec,
    metered,
  };
}
