#!/usr/bin/env node
// asm-cni-webhook: `serve` runs the admission webhook; `mutate` previews the rewrite on manifests (webhook-core's
// runMutate). Flags win over environment variables, which win over defaults.
import { parseArgs } from 'node:util';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { admit } from '../core/admit.js';
import { ConfigFileError } from './config-watch.js';
import type { DestinationStream } from 'pino';
import { createLogger } from '../../common/logging.js';
import { type ServeOptions, exitOnSignals, startServer } from './server.js';
import { TlsFileError } from './tls.js';
import { UsageError } from '../../common/usage-error.js';
export { UsageError };

export interface CliIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export const USAGE = `Usage: asm-cni-webhook <command> [flags]

Commands:
  serve     Run the mutating admission webhook (HTTPS POST /mutate, metrics on a separate plain-HTTP port)
  mutate    Rewrite Pods and workload manifests offline, as the webhook would (see: asm-cni-webhook mutate --help)

Flags of serve (environment variable in brackets):
  --port N              HTTPS port for admission and probes [ASM_WEBHOOK_PORT] (default 9443)
  --host ADDR           address to listen on [ASM_WEBHOOK_HOST] (default 0.0.0.0)
  --metrics-port N      plain-HTTP port for GET /metrics [ASM_METRICS_PORT] (default 9090)
  --cert FILE           PEM serving certificate (chain) [ASM_TLS_CERT] (required)
  --key FILE            PEM private key of the certificate [ASM_TLS_KEY] (required)
  --client-ca FILE      PEM CA bundle; when set, clients must present a certificate it signed [ASM_CLIENT_CA]
  --ca FILE             PEM bundle holding the CA of the serving certificate (the Secret's ca.crt); read only to
                        report that CA's expiry (metrics, a warning log) [ASM_TLS_CA]
  --config FILE         shared YAML config (the asm-cni ConfigMap) [ASM_CONFIG] (default: built-in defaults)
  --shutdown-delay S    seconds to keep serving after SIGTERM while endpoints update [ASM_SHUTDOWN_DELAY] (default 5)
  --shutdown-grace S    seconds in-flight requests get after the listener closed [ASM_SHUTDOWN_GRACE] (default 20)
  --body-limit SIZE     largest review body accepted, bigger ones get 413 [ASM_BODY_LIMIT] (default 6Mi)
  --max-in-flight SIZE  review bytes processed at once [ASM_MAX_IN_FLIGHT] (default 4Mi)
  --in-flight-wait S    seconds a review waits, unread, for room under that limit before a 429 with Retry-After
                        [ASM_IN_FLIGHT_WAIT] (default 1)
  -h, --help            show this help

Certificate, key, CA and config files are reloaded when they change (Secret/ConfigMap updates included).
`;

function port(name: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) > 65535)
    throw new UsageError(`${name} must be a port number 0-65535, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

const SIZE_UNITS: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** A byte count: digits with an optional Ki, Mi or Gi suffix, as in a Kubernetes quantity. */
function size(name: string, raw: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(raw.trim());
  const n = m === null ? NaN : Number(m[1]) * SIZE_UNITS[m[2] ?? '']!;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(
      `${name} must be a size in bytes > 0, optionally with Ki, Mi or Gi, got ${JSON.stringify(raw)}`,
    );
  return n;
}

function seconds(name: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new UsageError(`${name} must be a number of seconds >= 0, got ${JSON.stringify(raw)}`);
  return Math.round(n * 1000);
}

/** serve's flags and environment into ServeOptions (without admit); throws UsageError naming the flag. */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv): Omit<ServeOptions, 'admit'> | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'metrics-port': { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        'client-ca': { type: 'string' },
        ca: { type: 'string' },
        config: { type: 'string' },
        'shutdown-delay': { type: 'string' },
        'shutdown-grace': { type: 'string' },
        'body-limit': { type: 'string' },
        'max-in-flight': { type: 'string' },
        'in-flight-wait': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const pick = (flag: string | undefined, envName: string): string | undefined => {
    const v = flag ?? env[envName];
    return v === undefined || v === '' ? undefined : v;
  };
  const cert = pick(values.cert, 'ASM_TLS_CERT');
  const key = pick(values.key, 'ASM_TLS_KEY');
  if (cert === undefined)
    throw new UsageError(
      '--cert (or ASM_TLS_CERT) is required: the PEM serving certificate; admission is only served over HTTPS',
    );
  if (key === undefined)
    throw new UsageError('--key (or ASM_TLS_KEY) is required: the PEM private key of the serving certificate');
  const clientCa = pick(values['client-ca'], 'ASM_CLIENT_CA');
  const ca = pick(values.ca, 'ASM_TLS_CA');
  const config = pick(values.config, 'ASM_CONFIG');
  const bodyLimit = pick(values['body-limit'], 'ASM_BODY_LIMIT');
  const maxInFlight = pick(values['max-in-flight'], 'ASM_MAX_IN_FLIGHT');
  const inFlightWait = pick(values['in-flight-wait'], 'ASM_IN_FLIGHT_WAIT');
  return {
    host: pick(values.host, 'ASM_WEBHOOK_HOST') ?? '0.0.0.0',
    port: port('--port (ASM_WEBHOOK_PORT)', pick(values.port, 'ASM_WEBHOOK_PORT') ?? '9443'),
    metricsPort: port('--metrics-port (ASM_METRICS_PORT)', pick(values['metrics-port'], 'ASM_METRICS_PORT') ?? '9090'),
    cert,
    key,
    ...(clientCa !== undefined ? { clientCa } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(config !== undefined ? { config } : {}),
    ...(bodyLimit !== undefined ? { bodyLimit: size('--body-limit (ASM_BODY_LIMIT)', bodyLimit) } : {}),
    ...(maxInFlight !== undefined
      ? { maxInFlightBytes: size('--max-in-flight (ASM_MAX_IN_FLIGHT)', maxInFlight) }
      : {}),
    ...(inFlightWait !== undefined
      ? { inFlightWaitMs: seconds('--in-flight-wait (ASM_IN_FLIGHT_WAIT)', inFlightWait) }
      : {}),
    shutdownDelayMs: seconds(
      '--shutdown-delay (ASM_SHUTDOWN_DELAY)',
      pick(values['shutdown-delay'], 'ASM_SHUTDOWN_DELAY') ?? '5',
    ),
    shutdownGraceMs: seconds(
      '--shutdown-grace (ASM_SHUTDOWN_GRACE)',
      pick(values['shutdown-grace'], 'ASM_SHUTDOWN_GRACE') ?? '20',
    ),
  };
}

async function serve(argv: string[], io: CliIO): Promise<number | 'running'> {
  const parsed = parseServeArgs(argv, io.env);
  if (parsed === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  // Logs go to the CLI's stdout: the process's own (asynchronous, flushed on exit), or the stream a caller gave.
  const log = createLogger(
    io.stdout === process.stdout ? {} : { destination: io.stdout as unknown as DestinationStream },
  );
  try {
    const running = await startServer({ ...parsed, admit, log });
    exitOnSignals(running, log);
    return 'running';
  } catch (err) {
    log.flush();
    throw err;
  }
}

/** Runs one command; resolves with the exit code, or 'running' when a server now keeps the process alive. */
export async function main(argv: string[], io: CliIO): Promise<number | 'running'> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(rest, io);
      case 'mutate': {
        // Loaded only for this command: serve never needs the manifest handling.
        const { runMutate } = await import('./mutate-cli.js');
        return await runMutate(rest, io);
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        (command === undefined ? io.stderr : io.stdout).write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)} (expected serve or mutate)`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`asm-cni-webhook: ${err.message}\nRun 'asm-cni-webhook --help' for usage.\n`);
      return 2;
    }
    if (err instanceof TlsFileError || err instanceof ConfigFileError) {
      io.stderr.write(`asm-cni-webhook: ${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      io.stderr.write(`asm-cni-webhook: cannot listen: ${e.message}\n`);
      return 1;
    }
    io.stderr.write(`asm-cni-webhook: ${e.stack ?? String(err)}\n`);
    return 1;
  }
}

const isEntryPoint = (): boolean => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
};

if (isEntryPoint()) {
  const io: CliIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
  void main(process.argv.slice(2), io).then((code) => {
    if (code !== 'running') process.exitCode = code;
  });
}
