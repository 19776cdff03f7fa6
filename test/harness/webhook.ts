// The product's webhook, started exactly as the README's run command starts it (`npm start`), on loopback.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess, logTail, type Managed } from './proc.js';
import { freePorts, httpGet, httpsGet } from './net.js';
import { waitFor } from './wait.js';
import { repoRoot } from './toolchain.js';

export interface Webhook {
  readonly port: number;
  readonly metricsPort: number;
  readonly certDir: string;
  readonly caPem: string;
  readonly url: string;
  /** Sum of asm_cni_webhook_reviews_total samples matching the given labels (all when none given). */
  reviews(match?: { outcome?: string; reason?: string }): Promise<number>;
  logs(): string;
  running(): boolean;
  /** SIGTERM (the webhook drains, then exits), SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

export async function startWebhook(opts: {
  dir: string;
  certDir: string;
  config?: string;
  port?: number;
  metricsPort?: number;
}): Promise<Webhook> {
  const [freeA, freeB] = (await freePorts(2)) as [number, number]; // distinct: both are bound only by npm start
  const port = opts.port ?? freeA;
  const metricsPort = opts.metricsPort ?? freeB;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ASM_WEBHOOK_PORT: String(port),
    ASM_METRICS_PORT: String(metricsPort),
    ASM_WEBHOOK_HOST: '127.0.0.1',
    ASM_DEV_CERT_DIR: opts.certDir,
    NODE_ENV: 'production',
  };
  if (opts.config !== undefined) {
    const configFile = join(opts.dir, 'webhook-config.yaml');
    writeFileSync(configFile, opts.config);
    env.ASM_CONFIG = configFile;
  }
  const proc: Managed = startProcess('webhook (npm start)', 'npm', ['start', '--silent'], {
    logFile: join(opts.dir, `webhook-${port}.log`),
    env,
    cwd: repoRoot,
  });
  const url = `https://127.0.0.1:${port}/mutate`;
  try {
    // npm start may build first and generate the dev certs; both take a while on a cold tree.
    const caPem = await waitFor(
      `webhook https://127.0.0.1:${port}/readyz`,
      async () => {
        const caFile = join(opts.certDir, 'ca.crt');
        if (!existsSync(caFile)) return undefined;
        const ca = readFileSync(caFile, 'utf8');
        const r = await httpsGet(`https://127.0.0.1:${port}/readyz`, { ca });
        return r.status === 200 ? ca : undefined;
      },
      {
        timeoutMs: 180_000,
        intervalMs: 300,
        abort: () => (proc.hasExited() ? `npm start exited:\n${logTail(proc.logFile)}` : undefined),
      },
    );
    return {
      port,
      metricsPort,
      certDir: opts.certDir,
      caPem,
      url,
      async reviews(match = {}) {
        const r = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
        if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}`);
        return sumCounter(r.body, 'asm_cni_webhook_reviews_total', match);
      },
      logs: () => logTail(proc.logFile, 40),
      running: () => !proc.hasExited(),
      stop: (graceMs?: number) => proc.stop(graceMs),
    };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** Sums the samples of a Prometheus counter whose labels include `match`. */
export function sumCounter(text: string, name: string, match: Record<string, string | undefined>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+([0-9.eE+-]+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const lm of (m[3] ?? '').matchAll(/\b([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!;
    if (Object.entries(match).every(([k, v]) => v === undefined || labels[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/** The built webhook's CLI (npm run build). */
export const webhookCli = join(repoRoot, 'dist/webhook/server/cli.js');

/** The `serve` arguments of the built webhook on loopback, as bench and soak start it (after the CLI's path). */
export function serveArgs(o: {
  port: number;
  metricsPort: number;
  certFile: string;
  keyFile: string;
  configFile?: string;
}): string[] {
  const args = ['serve', '--host', '127.0.0.1', '--port', String(o.port), '--metrics-port', String(o.metricsPort)];
  args.push('--cert', o.certFile, '--key', o.keyFile);
  if (o.configFile) args.push('--config', o.configFile);
  return args;
}
