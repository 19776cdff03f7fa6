// One step of the webhook's CPU waterfall (docs/bench.md): the product's serving stack built up piece by piece, each
// step a server of its own that adds one piece to the step before, all answering the same bytes (asm-cni's own answer
// to each review, from --responses). The pieces come from the built product (dist/), as shipped.
//   fastify   a minimal Fastify app: the product's TLS options and JSON body parser, a route sending the answer
//   serving   the product's app (buildApp: routes, hooks, in-flight budget, error handling, envelope checks), with a
//             stub admit() returning the precomputed outcome, the precomputed bytes as the answer, a silent logger
//             and metrics that record nothing
//   admit     + the real admit()
//   encode    + the answer encoded by the product (encodeReview) instead of the precomputed bytes
//   log       + the review log line: the product's logger at its default level (info), to stdout
//   metrics   + the product's metrics (WebhookMetrics as the server builds it, default metrics on)
// Usage: node waterfall-server.js --step STEP --port N --cert F --key F --responses FILE [--dist DIR]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Fastify, { type FastifyInstance } from 'fastify';
import { repoRoot } from '../../test/harness/toolchain.js';
import { SERVER_STEPS, type ServerStep } from './waterfall.js';

const JSON_UTF8 = 'application/json; charset=utf-8';

// Types only: the modules themselves are loaded from dist/ at run time, as shipped (the copy of src/ that tsc emits
// beside the harness in bench/.build is never run).
type AppModule = typeof import('../../src/webhook/server/app.js');
type AdmitModule = typeof import('../../src/webhook/core/admit.js');
type ConfigModule = typeof import('../../src/common/shared-config.js');
type LoggingModule = typeof import('../../src/common/logging.js');
type MetricsModule = typeof import('../../src/webhook/server/metrics.js');
type TlsModule = typeof import('../../src/webhook/server/tls.js');
type AdmitOutcome = ReturnType<AdmitModule['admit']>;

async function load<T>(dist: string, file: string): Promise<T> {
  return (await import(pathToFileURL(join(dist, file)).href)) as T;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      step: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      cert: { type: 'string' },
      key: { type: 'string' },
      responses: { type: 'string' },
      dist: { type: 'string', default: join(repoRoot, 'dist') },
    },
  });
  const step = values.step as ServerStep;
  if (!SERVER_STEPS.includes(step)) throw new Error(`--step must be one of ${SERVER_STEPS.join(', ')}`);
  if (!values.cert || !values.key || !values.responses) throw new Error('--cert, --key and --responses are required');
  const dist = values.dist;
  /** uid -> the exact answer body asm-cni gave to that review. */
  const answers = new Map(
    (JSON.parse(readFileSync(values.responses, 'utf8')) as Array<{ uid: string; body: string }>).map((r) => [
      r.uid,
      r.body,
    ]),
  );
  const answerFor = (uid: string): string => {
    const a = answers.get(uid);
    if (a === undefined) throw new Error(`no precomputed answer for uid ${uid}`);
    return a;
  };
  const tls = await load<TlsModule>(dist, 'webhook/server/tls.js');
  const https = tls.httpsServerOptions(tls.loadTlsMaterial({ cert: values.cert, key: values.key }));
  const at = SERVER_STEPS.indexOf(step);
  const has = (s: ServerStep): boolean => at >= SERVER_STEPS.indexOf(s);

  let app: FastifyInstance;
  if (step === 'fastify') {
    app = Fastify({ https });
    // The product's parser: the body as one buffer, JSON.parse of its text.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      try {
        done(null, JSON.parse((body as Buffer).toString('utf8')));
      } catch (err) {
        done(err as Error, undefined);
      }
    });
    app.post('/mutate', (request, reply) => {
      const uid = (request.body as { request: { uid: string } }).request.uid;
      return reply.type(JSON_UTF8).send(answerFor(uid));
    });
  } else {
    const { buildApp } = await load<AppModule>(dist, 'webhook/server/app.js');
    const { admit } = await load<AdmitModule>(dist, 'webhook/core/admit.js');
    const { DEFAULT_CONFIG } = await load<ConfigModule>(dist, 'common/shared-config.js');
    const { createLogger } = await load<LoggingModule>(dist, 'common/logging.js');
    const { WebhookMetrics } = await load<MetricsModule>(dist, 'webhook/server/metrics.js');
    // The stub: admit()'s outcome for each uid, computed once by the real admit() and then returned as it is.
    const outcomes = new Map<string, AdmitOutcome>();
    const stubAdmit: AdmitModule['admit'] = (request, config) => {
      let o = outcomes.get(request.uid);
      if (o === undefined) outcomes.set(request.uid, (o = admit(request, config)));
      return o;
    };
    class NoMetrics extends WebhookMetrics {
      override recordReview(): void {}
    }
    const log = createLogger({ level: has('log') ? 'info' : 'silent', pretty: false });
    app = buildApp({
      admit: has('admit') ? admit : stubAdmit,
      config: () => DEFAULT_CONFIG,
      ready: () => true,
      logger: log.logger,
      metrics: has('metrics') ? new WebhookMetrics() : new NoMetrics({ defaultMetrics: false }),
      https,
      ...(has('encode') ? {} : { encode: (response) => answerFor(response.uid) }),
    }) as unknown as FastifyInstance;
    process.on('SIGTERM', () => log.flush());
  }
  await app.listen({ host: values.host, port: Number(values.port) });
  const addr = app.server.address();
  process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : values.port}\n`);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

main().catch((e: unknown) => {
  process.stderr.write(`waterfall-server: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
