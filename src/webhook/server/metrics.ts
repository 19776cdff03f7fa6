// Prometheus metrics of the webhook, in a registry of its own (never prom-client's global one, so tests and
// embedders can build several servers in one process), served on a separate plain-HTTP port.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import type { ReviewOutcome } from '../core/review.js';

// Admission latency is dominated by the API server's round trip; the webhook's own share is sub-millisecond for
// a typical pod. Buckets start at 250µs and reach the 10s default webhook timeout.
const LATENCY_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** The certificate the process serves now (set by the TLS reloader), and the CA that issued it when known. */
export interface ServedCertificate {
  serial: string;
  /** SHA-256 fingerprint as openssl prints it (`openssl x509 -noout -fingerprint -sha256`): AB:CD:... */
  sha256: string;
  notAfter: Date;
  ca?: { serial: string; sha256: string; notAfter: Date };
}

/** What the in-flight gauges read (the app's InFlightBudget). */
interface InFlightSource {
  bytes: number;
  reviews: number;
  waiting: number;
  limitBytes: number;
}

export class WebhookMetrics {
  readonly registry = new client.Registry();
  readonly reviews: client.Counter<'outcome' | 'reason'>;
  readonly reviewDuration: client.Histogram<'outcome'>;
  readonly configReloads: client.Counter;
  readonly configReloadFailures: client.Counter;
  readonly certReloads: client.Counter;
  readonly certReloadFailures: client.Counter;
  readonly certNotAfter: client.Gauge;
  readonly certExpiry: client.Gauge<'sha256'>;
  readonly caExpiry: client.Gauge<'sha256'>;
  readonly certInfo: client.Gauge<'serial' | 'sha256' | 'ca_sha256'>;
  private served: ServedCertificate | undefined;
  /** The clock the expiry gauges count down with (ms since the epoch). */
  private readonly now: () => number;
  readonly tlsClientErrors: client.Counter;
  readonly ready: client.Gauge;
  readonly inFlightBytes: client.Gauge;
  readonly inFlightReviews: client.Gauge;
  readonly inFlightLimitBytes: client.Gauge;
  readonly inFlightWaiting: client.Gauge;
  /** Read at each scrape: the app's budget of review bytes in flight. */
  private inFlight: InFlightSource | undefined;

  constructor(opts: { defaultMetrics?: boolean; now?: () => number } = {}) {
    const registers = [this.registry];
    this.now = opts.now ?? Date.now;
    // The expiry gauges are computed at each scrape, so they count down between certificate loads. Labelled with the
    // certificate's fingerprint: a gauge without labels would show 0 (expired!) when there is nothing to report.
    const countDown = (gauge: client.Gauge<'sha256'>, c: { sha256: string; notAfter: Date } | undefined): void => {
      gauge.reset();
      if (c !== undefined) gauge.set({ sha256: c.sha256 }, Math.floor((c.notAfter.getTime() - this.now()) / 1000));
    };
    const served = (): ServedCertificate | undefined => this.served;
    this.reviews = new client.Counter({
      name: 'asm_cni_webhook_reviews_total',
      help: 'AdmissionReviews answered, by outcome (patched, skipped, denied, error) and reason code.',
      labelNames: ['outcome', 'reason'] as const,
      registers,
    });
    this.reviewDuration = new client.Histogram({
      name: 'asm_cni_webhook_review_duration_seconds',
      help: 'Time from receiving an AdmissionReview request to having its response ready, by outcome.',
      labelNames: ['outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.configReloads = new client.Counter({
      name: 'asm_cni_webhook_config_reloads_total',
      help: 'Successful loads of the shared config file (including the first).',
      registers,
    });
    this.configReloadFailures = new client.Counter({
      name: 'asm_cni_webhook_config_reload_failures_total',
      help: 'Config file changes that were refused (unreadable or invalid); the last good config stays in force.',
      registers,
    });
    this.certReloads = new client.Counter({
      name: 'asm_cni_webhook_cert_reloads_total',
      help: 'Successful loads of the serving certificate and key (including the first).',
      registers,
    });
    this.certReloadFailures = new client.Counter({
      name: 'asm_cni_webhook_cert_reload_failures_total',
      help: 'Certificate file changes that were refused (unreadable, invalid, key mismatch); the last good pair keeps serving.',
      registers,
    });
    this.certNotAfter = new client.Gauge({
      name: 'asm_cni_webhook_cert_not_after_timestamp_seconds',
      help: 'Expiry (notAfter, Unix seconds) of the certificate being served; alert when it gets close.',
      registers,
    });
    this.certExpiry = new client.Gauge({
      name: 'asm_cni_webhook_cert_expiry_seconds',
      help: 'Seconds until the served certificate (by SHA-256 fingerprint) expires, negative once it has; alert well before 0.',
      labelNames: ['sha256'] as const,
      registers,
      collect() {
        countDown(this, served());
      },
    });
    this.caExpiry = new client.Gauge({
      name: 'asm_cni_webhook_ca_expiry_seconds',
      help: 'Seconds until the CA (by SHA-256 fingerprint) that issued the served certificate expires; no sample when the CA bundle is not given or does not hold it.',
      labelNames: ['sha256'] as const,
      registers,
      collect() {
        countDown(this, served()?.ca);
      },
    });
    this.certInfo = new client.Gauge({
      name: 'asm_cni_webhook_cert_info',
      help: 'Always 1: which certificate this process serves now (serial, SHA-256 fingerprint, and its CA\'s fingerprint or ""). Compare across replicas during a rotation.',
      labelNames: ['serial', 'sha256', 'ca_sha256'] as const,
      registers,
    });
    this.tlsClientErrors = new client.Counter({
      name: 'asm_cni_webhook_tls_client_errors_total',
      help: 'Connections dropped during the TLS handshake (plain HTTP, old TLS versions, untrusted client certificates).',
      registers,
    });
    this.ready = new client.Gauge({
      name: 'asm_cni_webhook_ready',
      help: '1 while the webhook reports ready (certificate and config loaded, not shutting down), else 0.',
      registers,
    });
    const inFlight = () => this.inFlight;
    this.inFlightBytes = new client.Gauge({
      name: 'asm_cni_webhook_in_flight_bytes',
      help: 'Bytes of AdmissionReviews being received, decided or answered now (their declared sizes).',
      registers,
      collect() {
        this.set(inFlight()?.bytes ?? 0);
      },
    });
    this.inFlightReviews = new client.Gauge({
      name: 'asm_cni_webhook_in_flight_reviews',
      help: 'AdmissionReviews being received, decided or answered now.',
      registers,
      collect() {
        this.set(inFlight()?.reviews ?? 0);
      },
    });
    this.inFlightLimitBytes = new client.Gauge({
      name: 'asm_cni_webhook_in_flight_limit_bytes',
      help: 'The limit on review bytes in flight; reviews beyond it are refused with 429 (reason in-flight-limit).',
      registers,
      collect() {
        this.set(inFlight()?.limitBytes ?? 0);
      },
    });
    this.inFlightWaiting = new client.Gauge({
      name: 'asm_cni_webhook_in_flight_waiting',
      help: 'AdmissionReviews waiting, body unread, for room under the in-flight limit.',
      registers,
      collect() {
        this.set(inFlight()?.waiting ?? 0);
      },
    });
    if (opts.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry });
  }

  /** The budget whose use the in-flight gauges report. */
  observeInFlight(budget: InFlightSource): void {
    this.inFlight = budget;
  }

  /** Records the certificate put into service: the info gauge's labels, and what the expiry gauges count down to. */
  setServedCertificate(c: ServedCertificate): void {
    this.served = c;
    this.certInfo.reset();
    this.certInfo.set({ serial: c.serial, sha256: c.sha256, ca_sha256: c.ca?.sha256 ?? '' }, 1);
  }

  /** Counts one review and observes its latency (plain prom-client calls: microseconds, against the hundreds a review costs). */
  recordReview(outcome: ReviewOutcome, reason: string, seconds: number): void {
    this.reviews.inc({ outcome, reason });
    this.reviewDuration.observe({ outcome }, seconds);
  }
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  /** Reported on /readyz, so probes may use the plain port too. */
  ready: () => boolean;
}

/** A plain node:http server: GET /metrics (text exposition), /healthz and /readyz. Nothing else, no admission. */
export function createMetricsServer(metrics: WebhookMetrics, opts: Pick<MetricsServerOptions, 'ready'>): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      res
        .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
        .end('not found: the metrics port serves GET /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const ok = opts.ready();
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' })
        .end(ok ? 'ready\n' : 'not ready\n');
      return;
    }
    metrics.ready.set(opts.ready() ? 1 : 0);
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      /* c8 ignore next */ (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  server.keepAliveTimeout = 65_000;
  return server;
}

/** Listens and resolves with the bound port (port 0 picks a free one). */
export function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
