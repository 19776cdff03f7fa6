// pino for the webhook: structured JSON lines in production, pino-pretty only for a developer at a terminal.
// One logger for the whole process (no per-request children): the review line carries its own uid.
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Pretty output when NODE_ENV is development, or stdout is a terminal and NODE_ENV is not production. */
export function wantPretty(
  env: NodeJS.ProcessEnv = process.env,
  isTTY: boolean = Boolean(process.stdout.isTTY),
): boolean {
  if (env.NODE_ENV === 'development') return true;
  return isTTY && env.NODE_ENV !== 'production';
}

export interface LoggerOptions {
  level?: string;
  /** Defaults to wantPretty(). pino-pretty is a dev dependency: without it the output stays JSON. */
  pretty?: boolean;
  /** Where lines go; defaults to stdout through an asynchronous sonic-boom (flushed on exit). */
  destination?: DestinationStream;
}

export interface WebhookLogger {
  logger: Logger;
  /** Writes out anything buffered; call before the process exits. */
  flush: () => void;
}

/** Bytes of log lines collected before a write: about 50 review lines under load. */
export const LOG_BATCH_BYTES = 16 * 1024;
/** sonic-boom's largest single write; the batch must stay below it. */
const LOG_MAX_WRITE = 64 * 1024;
/** The longest a line waits in the batch: a quiet webhook's lines still show within a quarter of a second. */
export const LOG_FLUSH_MS = 250;

const require = createRequire(import.meta.url);

function prettyStream(): DestinationStream | undefined {
  try {
    // Synchronous stream form (no worker thread), only loaded when wanted, absent from production images.
    const pretty = require('pino-pretty') as (opts: object) => DestinationStream;
    return pretty({ colorize: Boolean(process.stdout.isTTY), translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  } catch {
    return undefined;
  }
}

export function createLogger(opts: LoggerOptions = {}): WebhookLogger {
  const pretty = opts.pretty ?? wantPretty();
  let dest = opts.destination ?? (pretty ? prettyStream() : undefined);
  let boom: ReturnType<typeof pino.destination> | undefined;
  if (dest === undefined) {
    // Asynchronous, batched writes: lines collect until LOG_BATCH_BYTES are pending (or LOG_FLUSH_MS passed), then go
    // out in one write(2). Without the batch each review's line was its own write and thread-pool hand-off, which cost
    // more CPU than the line's formatting. Lines still buffered are written by flush() on shutdown and, should the
    // process exit any other way, by pino's exit hook. If stdout stops being read, lines beyond 8 MiB of backlog are
    // dropped rather than growing the heap until the pod is OOM-killed.
    boom = pino.destination({
      dest: 1,
      sync: false,
      minLength: LOG_BATCH_BYTES,
      maxWrite: LOG_MAX_WRITE,
      periodicFlush: LOG_FLUSH_MS,
      maxLength: 8 * 1024 * 1024,
    });
    dest = boom;
  }
  const logger = pino(
    {
      level: opts.level ?? 'info',
      base: { component: 'asm-cni-webhook' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  return {
    logger,
    flush() {
      try {
        boom?.flushSync();
      } catch {
        /* c8 ignore next */
        // EAGAIN on a full pipe: nothing more can be done at exit.
      }
    },
  };
}
