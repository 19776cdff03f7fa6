// Readiness and graceful shutdown. On SIGTERM the order is: report not ready (so the endpoint is removed and the
// API server stops choosing this pod), keep serving for a short delay while that propagates (each answer then says
// Connection: close, so kept-alive clients reconnect elsewhere instead of reusing this server), stop accepting
// connections and close the idle keep-alive ones, let the requests in flight finish, and only force-close what is
// left when the grace period runs out. Nothing that reached the handler is dropped.
import type http from 'node:http';
import type { Logger } from '../../common/logging.js';

/** Ready once certificate and config are loaded and the listener is up; never again once shutdown began. */
export class Readiness {
  certLoaded = false;
  configLoaded = false;
  listening = false;
  shuttingDown = false;

  get ready(): boolean {
    return this.certLoaded && this.configLoaded && this.listening && !this.shuttingDown;
  }
}

export interface DrainOptions {
  /** The admission server's connections (swept and, past the grace period, cut). */
  server: http.Server;
  /** Stops listening and resolves when every connection has ended (Fastify's close(), which also marks responses
   * of requests arriving from now on Connection: close). */
  close: () => Promise<void>;
  /** How long to keep serving normally after readiness went false (ms). */
  delayMs: number;
  /** How long in-flight requests may take after the listener closed before connections are cut (ms). */
  graceMs: number;
  logger: Logger;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Stops the server gracefully. Resolves true when every connection ended on its own, false when the grace period
 * ran out and the remaining ones were cut.
 */
export async function drain(opts: DrainOptions): Promise<boolean> {
  const { server, logger } = opts;
  if (opts.delayMs > 0) {
    logger.info({ delayMs: opts.delayMs }, 'shutdown: not ready; still serving while endpoints are updated');
    await sleep(opts.delayMs);
  }
  logger.info(
    { graceMs: opts.graceMs },
    'shutdown: closing the listener and idle connections; finishing requests in flight',
  );
  const closed = opts.close();
  // server.close() closes the connections idle right now; a connection whose request finishes later becomes idle
  // afterwards (its response carried Connection: close only if it arrived after close), so sweep until done.
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), opts.graceMs);
  });
  const clean = await Promise.race([closed.then(() => true), expired]);
  clearInterval(sweep);
  clearTimeout(timer);
  if (!clean) {
    logger.warn({ graceMs: opts.graceMs }, 'shutdown: grace period over; closing the connections still open');
    server.closeAllConnections();
    await closed;
  }
  return clean;
}
