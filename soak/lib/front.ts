// A loopback TCP front standing in for the webhook's Service (kube-proxy + EndpointSlice): TLS passes through
// untouched; each new connection goes to a backend whose /readyz currently answers 200 (polled like the endpoints
// controller does from readiness probes, every `probeMs`). Established connections stay on their backend until one
// side closes them, exactly as with kube-proxy. With no ready backend a connection is refused (closed at once).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { request } from 'node:https';

export interface Backend {
  name: string;
  port: number;
}

export class TcpFront {
  private server: Server | undefined;
  private backends: Backend[] = [];
  private ready = new Set<string>();
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private sockets = new Set<Socket>();
  readonly connectionsTo: Record<string, number> = {};
  refused = 0;
  port = 0;

  constructor(
    private readonly ca: string,
    private readonly probeMs = 200,
  ) {}

  async listen(): Promise<number> {
    this.server = createServer((client) => this.route(client));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    this.timer = setInterval(() => void this.probeAll(), this.probeMs);
    return this.port;
  }

  add(b: Backend): void {
    this.backends.push(b);
  }

  remove(name: string): void {
    this.backends = this.backends.filter((b) => b.name !== name);
    this.ready.delete(name);
  }

  isReady(name: string): boolean {
    return this.ready.has(name);
  }

  private route(client: Socket): void {
    const candidates = this.backends.filter((b) => this.ready.has(b.name));
    if (candidates.length === 0) {
      this.refused++;
      client.destroy();
      return;
    }
    const b = candidates[this.next++ % candidates.length]!;
    this.connectionsTo[b.name] = (this.connectionsTo[b.name] ?? 0) + 1;
    const upstream = connect(b.port, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream).pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  }

  private async probeAll(): Promise<void> {
    await Promise.all(
      this.backends.map(async (b) => {
        const ok = await probeReady(b.port, this.ca, this.probeMs * 2);
        if (ok) this.ready.add(b.name);
        else this.ready.delete(b.name);
      }),
    );
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** GET /readyz over TLS on a fresh connection; true when it answers 200. */
export function probeReady(
  port: number,
  ca: string,
  timeoutMs: number,
  clientCert?: { cert: string; key: string },
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/readyz',
        method: 'GET',
        ca,
        servername: 'localhost',
        agent: false,
        timeout: timeoutMs,
        ...clientCert,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
