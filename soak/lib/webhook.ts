// Starting the real webhook (the built CLI, as `npm start` runs it) on loopback, and probing it from outside.
import { existsSync } from 'node:fs';
import { get } from 'node:http';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { webhookDeploymentLimits } from './deployment.js';
import { probeReady } from './front.js';
import { freePort, startLogged, rssMiB, type Child } from './proc.js';
import { repoRoot } from './reviews.js';
import { waitFor } from './stats.js';
import { serveArgs, webhookCli as builtWebhookCli } from '../../test/harness/webhook.js';

/** SOAK_WEBHOOK_CLI runs the harness against another build of the same CLI contract. */
export const webhookCli = process.env.SOAK_WEBHOOK_CLI ?? builtWebhookCli;

export interface WebhookOptions {
  name: string;
  certFile: string;
  keyFile: string;
  configFile?: string;
  clientCaFile?: string;
  logDir: string;
  /** the CA to verify the serving cert while waiting for readiness */
  ca: string;
  clientCert?: { cert: string; key: string };
  readyTimeoutMs?: number;
  /** more serve flags */
  extraArgs?: string[];
  /** wraps the command line, e.g. to start it inside a memory cgroup (lib/cgroup.ts) */
  wrap?: (cmd: string, args: string[]) => { cmd: string; args: string[] };
}

export interface WebhookInstance {
  name: string;
  port: number;
  metricsPort: number;
  child: Child;
  logFile: string;
  startedMs: number;
  readyMs: number;
}

export function requireBuilt(): void {
  if (!existsSync(webhookCli))
    throw new Error(`${webhookCli} is missing: run npm run build (the webhook server has not landed or did not build)`);
}

export async function startWebhook(o: WebhookOptions): Promise<WebhookInstance> {
  requireBuilt();
  const port = await freePort();
  const metricsPort = await freePort();
  const args = [webhookCli, ...serveArgs({ port, metricsPort, ...o })];
  if (o.clientCaFile) args.push('--client-ca', o.clientCaFile);
  if (o.extraArgs) args.push(...o.extraArgs);
  const logFile = join(o.logDir, `${o.name}.log`);
  const started = performance.now();
  // the heap sizing and malloc tuning the Deployment gives the container (SOAK_NODE_OPTIONS, SOAK_GLIBC_TUNABLES override)
  const deployment = webhookDeploymentLimits();
  const nodeOptions = process.env.SOAK_NODE_OPTIONS ?? deployment.nodeOptions;
  const glibcTunables = process.env.SOAK_GLIBC_TUNABLES ?? deployment.glibcTunables;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'production',
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
    ...(glibcTunables ? { GLIBC_TUNABLES: glibcTunables } : {}),
  };
  for (const k of [
    'ASM_WEBHOOK_PORT',
    'ASM_METRICS_PORT',
    'ASM_TLS_CERT',
    'ASM_TLS_KEY',
    'ASM_CONFIG',
    'ASM_CLIENT_CA',
    'ASM_WEBHOOK_HOST',
  ])
    delete env[k];
  const cmd = o.wrap ? o.wrap(process.execPath, args) : { cmd: process.execPath, args };
  const child = startLogged(cmd.cmd, cmd.args, logFile, { env, cwd: repoRoot });
  const ready = await Promise.race([
    waitFor(() => probeReady(port, o.ca, 1000, o.clientCert), o.readyTimeoutMs ?? 20_000, 100),
    child.exited.then(() => false as const),
  ]);
  if (!ready) {
    child.proc.kill('SIGKILL');
    throw new Error(
      `webhook ${o.name} did not become ready on :${port} (exit ${JSON.stringify(child.exit ?? null)}; log ${logFile})`,
    );
  }
  return { name: o.name, port, metricsPort, child, logFile, startedMs: started, readyMs: performance.now() - started };
}

export function rssOf(w: WebhookInstance): number | undefined {
  return rssMiB(w.child.pid);
}

/** SHA-256 fingerprint of the certificate the server presents on a fresh connection. */
export function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, rejectUnauthorized: true }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.setTimeout(3000, () => s.destroy(new Error('TLS handshake timed out')));
    s.on('error', reject);
  });
}

export function metricsText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', timeout: 3000 }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (t += c));
      res.on('end', () => resolve(t));
    });
    req.on('timeout', () => req.destroy(new Error('metrics timed out')));
    req.on('error', reject);
  });
}

/** Sum of a metric's samples whose labels include all of `labels` (a metric name prefix match on the sample name). */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** Quantile of a Prometheus histogram summed over all label sets (the bucket's upper bound, in ms). */
export function histogramQuantileMs(texts: string[], name: string, q: number): number | undefined {
  const buckets = new Map<number, number>();
  for (const text of texts) {
    for (const line of text.split('\n')) {
      const m = new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\}\\s+(\\S+)`).exec(line);
      if (!m) continue;
      const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(m[2]));
    }
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted[sorted.length - 1]?.[1] ?? 0;
  if (total === 0) return undefined;
  const hit = sorted.find(([, c]) => c >= q * total);
  return hit ? hit[0] * 1000 : undefined;
}
