// The running webhook: loads config and certificate, serves admission over HTTPS and metrics over plain HTTP,
// reloads both files when they change, and shuts down gracefully. The only place that listens.
import type { Server as HttpsServer } from 'node:https';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_MAX_IN_FLIGHT_BYTES, buildApp } from './app.js';
import { ConfigSource } from './config-watch.js';
import { type WebhookLogger, createLogger } from '../../common/logging.js';
import { WebhookMetrics, createMetricsServer, listen } from './metrics.js';
import type { AdmitFn } from '../core/review.js';
import { type FileWatch, watchFiles } from '../../common/file-watch.js';
import { Readiness, drain } from './shutdown.js';
import { CertReloader, httpsServerOptions } from './tls.js';

export interface ServeOptions {
  host: string;
  port: number;
  metricsPort: number;
  cert: string;
  key: string;
  clientCa?: string;
  /** PEM bundle holding the CA of the serving certificate (the Secret's ca.crt): its expiry is reported. */
  ca?: string;
  config?: string;
  /** Keep serving this long after readiness went false on SIGTERM (ms). */
  shutdownDelayMs: number;
  /** In-flight requests get this long after the listener closed (ms). */
  shutdownGraceMs: number;
  admit: AdmitFn;
  log?: WebhookLogger;
  /** File-watch tuning (tests use short intervals). */
  watch?: { debounceMs?: number; pollMs?: number };
  /** Largest review body accepted (bytes); see DEFAULT_BODY_LIMIT. */
  bodyLimit?: number;
  /** Review bytes in flight at once (bytes); see DEFAULT_MAX_IN_FLIGHT_BYTES. */
  maxInFlightBytes?: number;
  /** How long a review waits for room under maxInFlightBytes before a 429 (ms). */
  inFlightWaitMs?: number;
  /** Socket inactivity allowed before and within a request (ms); see DEFAULT_CONNECTION_TIMEOUT_MS. */
  connectionTimeoutMs?: number;
}

export interface RunningWebhook {
  app: FastifyInstance;
  metricsServer: http.Server;
  port: number;
  metricsPort: number;
  readiness: Readiness;
  metrics: WebhookMetrics;
  certs: CertReloader;
  config: ConfigSource;
  /** Graceful stop: readiness false, delay, drain. Resolves true when nothing had to be cut. Idempotent. */
  shutdown(opts?: { delayMs?: number }): Promise<boolean>;
}

export async function startServer(opts: ServeOptions): Promise<RunningWebhook> {
  const log = opts.log ?? createLogger();
  const logger = log.logger;
  const metrics = new WebhookMetrics();
  const readiness = new Readiness();
  const setReady = () => metrics.ready.set(readiness.ready ? 1 : 0);

  const config = new ConfigSource({
    ...(opts.config !== undefined ? { path: opts.config } : {}),
    logger,
    metrics,
    onApply: (c) => {
      logger.level = c.logLevel;
    },
  });
  readiness.configLoaded = true;
  const certs = new CertReloader({
    files: {
      cert: opts.cert,
      key: opts.key,
      ...(opts.clientCa !== undefined ? { clientCa: opts.clientCa } : {}),
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
    },
    logger,
    metrics,
  });
  readiness.certLoaded = true;

  const app = buildApp({
    admit: opts.admit,
    config: () => config.current,
    ready: () => readiness.ready,
    draining: () => readiness.shuttingDown,
    logger,
    metrics,
    https: httpsServerOptions(certs.current),
    ...(opts.connectionTimeoutMs === undefined ? {} : { connectionTimeout: opts.connectionTimeoutMs }),
    ...(opts.bodyLimit === undefined ? {} : { bodyLimit: opts.bodyLimit }),
    ...(opts.maxInFlightBytes === undefined ? {} : { maxInFlightBytes: opts.maxInFlightBytes }),
    ...(opts.inFlightWaitMs === undefined ? {} : { inFlightWaitMs: opts.inFlightWaitMs }),
  });
  const tlsServer = app.server as unknown as HttpsServer;
  certs.apply = (ctx) => tlsServer.setSecureContext(ctx);
  tlsServer.on('tlsClientError', (err: NodeJS.ErrnoException) => {
    metrics.tlsClientErrors.inc();
    logger.debug({ err: err.code ?? err.message }, 'TLS handshake refused');
  });

  await app.listen({ host: opts.host, port: opts.port });
  const port = (app.server.address() as AddressInfo).port;
  readiness.listening = true;

  const metricsServer = createMetricsServer(metrics, { ready: () => readiness.ready });
  let metricsPort: number;
  try {
    metricsPort = await listen(metricsServer, opts.host, opts.metricsPort);
  } catch (err) {
    await app.close();
    throw err;
  }
  setReady();
  // After listen, a server's 'error' is an accept failure (EMFILE under a connection flood): log it, keep serving.
  const onServerError = (which: string) => (err: Error) =>
    logger.error({ err: err.message, server: which }, 'server error; still serving');
  app.server.on('error', onServerError('admission'));
  metricsServer.on('error', onServerError('metrics'));

  const watches: FileWatch[] = [];
  const onWatchError = (dir: string, err: Error) =>
    logger.warn({ dir, err: err.message }, 'cannot watch a directory; relying on polling');
  watches.push(
    watchFiles({
      files: [
        opts.cert,
        opts.key,
        ...(opts.clientCa !== undefined ? [opts.clientCa] : []),
        ...(opts.ca !== undefined ? [opts.ca] : []),
      ],
      onChange: () => certs.reload(),
      onWatchError,
      ...opts.watch,
    }),
  );
  if (opts.config !== undefined) {
    watches.push(watchFiles({ files: [opts.config], onChange: () => config.reload(), onWatchError, ...opts.watch }));
  }

  logger.info(
    {
      host: opts.host,
      port,
      metricsPort,
      clientCa: opts.clientCa !== undefined,
      bodyLimit: app.initialConfig.bodyLimit,
      maxInFlightBytes: opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES,
    },
    'asm-cni webhook serving (HTTPS /mutate)',
  );
  // Log lines are written in batches; the start-up lines are written now, for whoever waits on them.
  log.flush();

  let stopping: Promise<boolean> | undefined;
  const shutdown = (o: { delayMs?: number } = {}): Promise<boolean> => {
    stopping ??= (async () => {
      readiness.shuttingDown = true;
      setReady();
      for (const w of watches) w.close();
      const clean = await drain({
        server: app.server,
        close: () => app.close(),
        delayMs: o.delayMs ?? opts.shutdownDelayMs,
        graceMs: opts.shutdownGraceMs,
        logger,
      });
      metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      logger.info({ clean }, 'shutdown complete');
      log.flush();
      return clean;
    })();
    return stopping;
  };

  return { app, metricsServer, port, metricsPort, readiness, metrics, certs, config, shutdown };
}

/**
 * SIGTERM (kubelet): readiness false, the configured delay, drain, exit 0. SIGINT (a developer's Ctrl-C): the same
 * without the delay. A second Ctrl-C (SIGINT at least duplicateWindowMs after the first) cuts the remaining
 * connections and exits 1. Repeated SIGTERMs, and any signal within the window, are ignored: a signal sent to a
 * process group reaches this process twice when a parent (npm start) forwards it as well, and that must not turn a
 * graceful stop into dropped reviews.
 */
export function exitOnSignals(
  running: RunningWebhook,
  log: WebhookLogger,
  exit: (code: number) => void = (code) => process.exit(code),
  opts: { duplicateWindowMs?: number } = {},
): void {
  const windowMs = opts.duplicateWindowMs ?? 1000;
  let firstAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstAt !== undefined) {
      if (signal !== 'SIGINT' || Date.now() - firstAt < windowMs) {
        log.logger.info({ signal }, 'already shutting down; signal ignored');
        return;
      }
      log.logger.warn({ signal }, 'second interrupt: exiting without finishing requests in flight');
      running.app.server.closeAllConnections();
      log.flush();
      exit(1);
      return;
    }
    firstAt = Date.now();
    log.logger.info({ signal }, 'shutdown requested');
    running.shutdown(signal === 'SIGINT' ? { delayMs: 0 } : {}).then(
      () => exit(0),
      /* c8 ignore next 4 */ (err: Error) => {
        log.logger.error({ err: err.message }, 'shutdown failed');
        log.flush();
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
