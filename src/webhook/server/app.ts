// The webhook's HTTP surface as a Fastify app: POST /mutate, GET /healthz, GET /readyz. buildApp() never listens;
// tests drive it with inject(), the entry point (server.ts) adds TLS and listens.
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { SharedConfig } from '../../common/shared-config.js';
import type { Logger } from '../../common/logging.js';
import { InFlightBudget, reservedBytes } from './in-flight.js';
import { WebhookMetrics } from './metrics.js';
import {
  type AdmissionRequest,
  type AdmitFn,
  type Response,
  encodeReview,
  handle,
  parseReview,
} from '../core/review.js';

/**
 * 6 MiB. The API server refuses request bodies over 3 MiB (MaxRequestBodyBytes, not configurable by flag), so no
 * object it admits was larger than that when it arrived. The review it sends us re-encodes that object as JSON (a
 * protobuf request grows doing so), with the managedFields it added before admission (they mirror the object's field
 * set) and the envelope. Our entries are registered for CREATE only, so there is no oldObject. Twice the request limit
 * covers that; anything larger cannot come from the API server and is refused (413) before it is buffered further.
 */
export const DEFAULT_BODY_LIMIT = 6 * 1024 * 1024;

/**
 * 4 MiB of review bodies in flight at once: one review near the API server's 3 MiB request limit (with a few ordinary
 * ones beside it), or hundreds of ordinary reviews of a few KiB. A review costs several times its size in memory
 * until it is answered, and answering two large ones at once is no faster on one event loop than one after the
 * other; this keeps a burst of large reviews inside the Deployment's 256Mi memory limit (measured by npm run soak,
 * bench/soak.json). A review beyond it waits (DEFAULT_IN_FLIGHT_WAIT_MS), then gets 429 with Retry-After, which the
 * API server's client (client-go's rest client: checkWait in with_retry.go) honours and retries within the webhook's
 * timeout.
 */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024;

/**
 * A review that does not fit waits up to 1 s, unread, for reviews ahead of it to be answered (a 2.9 MB review takes
 * tens of milliseconds): a burst is served in order instead of bouncing. Then 429: a refused review still has time for
 * a retry within the shortest timeoutSeconds of our webhook entries (3 s).
 */
export const DEFAULT_IN_FLIGHT_WAIT_MS = 1000;

/** Seconds a refused client waits before retrying: the API server's client caps its wait by the call's deadline. */
const RETRY_AFTER_SECONDS = '1';

/**
 * The API server calls webhooks through Go's net/http with client-go's transport defaults: idle keep-alive
 * connections are kept 90 s. The server must hold an idle connection longer than the client does, or it may close
 * one just as the client reuses it, and a POST that loses that race is not retried: the admission fails. 120 s
 * leaves a margin over 90 s.
 */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 120_000;
/** A webhook's timeoutSeconds is at most 30: the API server has given up on anything slower. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Headers of a review are a few hundred bytes; a client that takes longer than this is stuck or hostile. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 15_000;
/**
 * Socket inactivity before a request (and within one). Node's header timeout only starts with a request, so without
 * this a client that completes the TLS handshake and never sends anything holds its connection forever (the soak
 * held 1000 that way). Idle keep-alive connections after a response are governed by keepAliveTimeout instead.
 * Kept below requestTimeout: set equal to it (30 s) on Node 20, the silent connection was still open after 34 s.
 */
export const DEFAULT_CONNECTION_TIMEOUT_MS = 20_000;

export interface AppOptions {
  /** The pure decision (webhook-core's admit). */
  admit: AdmitFn;
  /** The config in force; called once per review, so a reload applies to the next request. */
  config: () => SharedConfig;
  /** Readiness: certificate and config loaded, not shutting down. */
  ready: () => boolean;
  /** True once shutdown began: answers then carry Connection: close, so clients move off this server on their own. */
  draining?: () => boolean;
  logger: Logger;
  metrics?: WebhookMetrics;
  /**
   * The answer's wire encoding; encodeReview unless given. The bench's CPU waterfall (docs/bench.md) swaps in the
   * precomputed bytes to price the encoding apart from the rest of the handler.
   */
  encode?: (response: Response) => string;
  /** TLS options for the node:https server; absent for inject()-only tests. */
  https?: HttpsServerOptions;
  bodyLimit?: number;
  /** Review bytes in flight at once (see DEFAULT_MAX_IN_FLIGHT_BYTES). */
  maxInFlightBytes?: number;
  /** How long a review waits for room in the budget before it is refused (ms). */
  inFlightWaitMs?: number;
  keepAliveTimeout?: number;
  requestTimeout?: number;
  headersTimeout?: number;
  connectionTimeout?: number;
}

interface HttpError extends Error {
  statusCode: number;
  code: string;
}

function httpError(statusCode: number, code: string, message: string): HttpError {
  return Object.assign(new Error(message), { statusCode, code });
}

// Fastify's own error codes for refused bodies, named as the metrics/log reason.
const BODY_ERROR_REASONS: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body-too-large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid-content-length',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'empty-body',
  ASM_INVALID_JSON: 'invalid-json',
  ASM_EMPTY_BODY: 'empty-body',
  ASM_NO_BODY: 'unsupported-media-type',
};

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
};

function sendError(reply: FastifyReply, statusCode: number, reason: string, message: string): FastifyReply {
  return reply.code(statusCode).send({ statusCode, error: STATUS_TEXT[statusCode] ?? 'Error', reason, message });
}

function podName(request: AdmissionRequest): string | undefined {
  if (request.name) return request.name;
  const meta = (request.object as { metadata?: { name?: unknown; generateName?: unknown } } | null | undefined)
    ?.metadata;
  if (meta && typeof meta === 'object') {
    if (typeof meta.name === 'string' && meta.name) return meta.name;
    if (typeof meta.generateName === 'string' && meta.generateName) return meta.generateName;
  }
  return undefined;
}

const ALLOW_MUTATE = 'POST';
/** The content type Fastify gives a serialized object; set explicitly when the body is already a JSON string. */
const JSON_UTF8 = 'application/json; charset=utf-8';
const ALLOW_PROBE = 'GET, HEAD';

export function buildApp(opts: AppOptions): FastifyInstance {
  const log = opts.logger;
  const metrics = opts.metrics ?? new WebhookMetrics({ defaultMetrics: false });
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const draining = opts.draining ?? (() => false);
  const encode = opts.encode ?? encodeReview;
  const budget = new InFlightBudget(opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES);
  const waitMs = opts.inFlightWaitMs ?? DEFAULT_IN_FLIGHT_WAIT_MS;
  metrics.observeInFlight(budget);
  const app = Fastify({
    ...(opts.https ? { https: opts.https } : {}),
    loggerInstance: log as FastifyBaseLogger,
    // One line per review is written by the handler; Fastify's request/response lines would double it.
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger: binding a reqId costs an allocation per request for a line we never write.
    childLoggerFactory: (logger) => logger,
    bodyLimit,
    keepAliveTimeout: opts.keepAliveTimeout ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    requestTimeout: opts.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT_MS,
    connectionTimeout: opts.connectionTimeout ?? DEFAULT_CONNECTION_TIMEOUT_MS,
    // Requests arriving on a kept-alive connection while shutting down are answered (with Connection: close),
    // not refused with a 503: the API server may still be sending while its endpoints catch up.
    return503OnClosing: false,
    // Shutdown closes idle keep-alive connections itself (shutdown.ts); active ones finish their request.
    forceCloseConnections: false,
  });
  app.server.headersTimeout = opts.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT_MS;

  // Only JSON is accepted; text/plain and friends (Fastify's other default parsers) get a 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    const buf = body as Buffer;
    if (buf.length === 0) {
      done(
        httpError(400, 'ASM_EMPTY_BODY', 'the body is empty; an admission.k8s.io/v1 AdmissionReview is expected'),
        undefined,
      );
      return;
    }
    try {
      // Parsed once with the native parser; the body is only read, never merged into other objects.
      done(null, JSON.parse(buf.toString('utf8')));
    } catch (err) {
      done(httpError(400, 'ASM_INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
    const reason = BODY_ERROR_REASONS[err.code] ?? 'bad-request';
    let message = err.message;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = `the body is larger than the limit of ${bodyLimit} bytes`;
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = 'Content-Type must be application/json';
    if (request.routeOptions.url === '/mutate') {
      metrics.recordReview('error', reason, reply.elapsedTime / 1000);
      log.warn({ reason, status, error: err.message }, 'review refused');
    }
    return sendError(reply, status, reason, message);
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      404,
      'not-found',
      `no route ${request.method} ${request.url.split('?')[0]}; the webhook serves POST /mutate`,
    ),
  );

  // Wrong methods on known paths: 405 with Allow, answered in onRequest so that no body is read or parsed.
  const methodNotAllowed = (allow: string) => async (request: FastifyRequest, reply: FastifyReply) =>
    sendError(
      reply.header('allow', allow),
      405,
      'method-not-allowed',
      `${request.method} is not allowed on ${request.url.split('?')[0]}; use ${allow}`,
    );
  /* c8 ignore next */ const answeredInOnRequest = () => undefined; // never runs: onRequest has replied
  app.route({
    method: ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
    url: '/mutate',
    onRequest: methodNotAllowed(ALLOW_MUTATE),
    handler: answeredInOnRequest,
  });
  for (const url of ['/healthz', '/readyz']) {
    app.route({
      method: ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
      url,
      onRequest: methodNotAllowed(ALLOW_PROBE),
      handler: answeredInOnRequest,
    });
  }

  app.get('/healthz', (_request, reply) => {
    void reply.type('text/plain; charset=utf-8').send('ok\n');
  });
  app.get('/readyz', (_request, reply) => {
    const ready = opts.ready();
    void reply
      .code(ready ? 200 : 503)
      .type('text/plain; charset=utf-8')
      .send(ready ? 'ready\n' : 'not ready\n');
  });

  // The budget is taken before the body is read, so a refusal costs no buffering, and given back when the answer is
  // written or the connection is gone ('close' follows 'finish', and comes alone on an abort).
  const reserve = async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.headers['content-length'] === undefined && request.headers['transfer-encoding'] !== undefined) {
      // The API server always declares the length (client-go sends the encoded review from memory); a body of unknown
      // size could only be budgeted at the body limit, which would stall every other review while it arrives.
      metrics.recordReview('error', 'length-required', reply.elapsedTime / 1000);
      log.warn({ reason: 'length-required' }, 'review refused');
      return sendError(reply, 411, 'length-required', 'a review must declare its Content-Length');
    }
    const bytes = reservedBytes(request.headers['content-length'], bodyLimit);
    let holding = false;
    let closed = false;
    reply.raw.once('close', () => {
      closed = true;
      if (holding) budget.release(bytes);
    });
    const waited = performance.now();
    if (await budget.acquire(bytes, waitMs)) {
      // A client that left while it waited: its share goes back at once.
      if (closed) budget.release(bytes);
      else holding = true;
      return;
    }
    const message =
      `${budget.reviews} reviews (${budget.bytes} bytes) are in flight and this one (${bytes} bytes) would exceed ` +
      `the limit of ${budget.limitBytes} bytes for ${Math.round(performance.now() - waited)} ms; retry after ${RETRY_AFTER_SECONDS} s`;
    metrics.recordReview('error', 'in-flight-limit', reply.elapsedTime / 1000);
    log.warn(
      { reason: 'in-flight-limit', bytes, inFlightBytes: budget.bytes, inFlightReviews: budget.reviews },
      'review refused',
    );
    return sendError(reply.header('retry-after', RETRY_AFTER_SECONDS), 429, 'in-flight-limit', message);
  };

  app.post('/mutate', { onRequest: reserve }, (request, reply) => {
    if (request.body === undefined) {
      // No body at all (no Content-Type either): nothing was parsed.
      throw httpError(
        415,
        'ASM_NO_BODY',
        'a JSON body (Content-Type: application/json) with an AdmissionReview is required',
      );
    }
    const parsed = parseReview(request.body);
    if (!parsed.ok) {
      metrics.recordReview('error', parsed.reason, reply.elapsedTime / 1000);
      log.warn({ reason: parsed.reason }, `review refused: ${parsed.message}`);
      return sendError(reply, 400, parsed.reason, parsed.message);
    }
    const req = parsed.request;
    // While draining, every answered review closes its connection: the client opens a new one (to a ready replica)
    // for its next review, instead of reusing this one and racing the idle-connection close at the end of the delay.
    if (draining()) void reply.header('connection', 'close');
    const result = handle(req, opts.config(), opts.admit);
    const response = result.response;
    const ms = reply.elapsedTime;
    metrics.recordReview(result.outcome, result.reason, ms / 1000);
    const line = {
      uid: req.uid,
      namespace: req.namespace,
      pod: podName(req),
      operation: req.operation,
      dryRun: req.dryRun === true ? true : undefined,
      decision: result.outcome,
      reason: result.reason,
      patchOps: response.patch?.length ?? 0,
      warnings: response.warnings?.length ?? 0,
      durationMs: Math.round(ms * 1000) / 1000,
    };
    if (result.outcome === 'error') log.error({ ...line, error: response.status?.message }, 'review failed');
    else log.info(line, 'review');
    if (response.patch && log.isLevelEnabled('debug'))
      log.debug({ uid: req.uid, patch: response.patch }, 'review patch');
    // Encoded here in one pass; a string with a JSON content type goes out without Fastify's serializer.
    return reply.type(JSON_UTF8).send(encode(response));
  });

  return app;
}
