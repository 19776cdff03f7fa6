// `asm-cni-install` commands, wired from options to the installer, token source, repair controller and daemon.
import path from 'node:path';
import type { Writable } from 'node:stream';
import { AuthenticationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { startDaemon } from './daemon.js';
import { createHealthServer } from './health.js';
import { Installer } from './installer.js';
import { installerKubeConfig } from './kube.js';
import { createMetrics } from './metrics.js';
import { parseCommandLine, UsageError, USAGE, type InstallerOptions } from './options.js';
import { defaultBackoff, podApiFrom, RepairController } from './repair.js';
import {
  FileTokenSource,
  TokenCheck,
  TokenRequestSource,
  type ProbeToken,
  type RefreshReason,
  type TokenSource,
} from './token.js';

export interface MainIO {
  /** Log lines (JSON) and usage text. */
  out: Writable;
  err: Writable;
  /** Aborted on SIGTERM/SIGINT: `run` stops and leaves everything installed. */
  signal?: AbortSignal;
  /** Waits between the passes of `once` (tests count passes instead of waiting). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * `once` gives up after this many passes in a row in which a step failed: a failure that outlives ten retries (about
 * ten seconds) is permanent (say, X.conf beside somebody else's X.conflist). Waiting for a primary config is not a
 * failure: the primary CNI writes it when it starts.
 */
export const ONCE_MAX_FAILED_PASSES = 10;

function tokenSource(
  options: InstallerOptions,
  api: CoreV1Api | null,
  onRefresh: (reason: RefreshReason) => void,
): TokenSource {
  if (!options.pluginServiceAccount || api === null) return new FileTokenSource(options.saDir); // '' too: own token
  const boundObjectRef = options.nodeName === null ? null : { apiVersion: 'v1', kind: 'Node', name: options.nodeName };
  return new TokenRequestSource(
    async ({ namespace, serviceAccount, expirationSeconds }) => {
      const result = await api.createNamespacedServiceAccountToken({
        name: serviceAccount,
        namespace,
        // Bound to this node's Node object: the token carries the node's name and dies with it (the shipped
        // admission policy accepts no other binding from the installer; docs/install.md).
        body: { spec: { audiences: [], expirationSeconds, ...(boundObjectRef ? { boundObjectRef } : {}) } },
      });
      const status = result.status;
      if (!status?.token) throw new Error('TokenRequest response has no status.token');
      return { token: status.token, expirationTimestamp: new Date(status.expirationTimestamp) };
    },
    {
      namespace: options.namespace,
      serviceAccount: options.pluginServiceAccount,
      expirationSeconds: options.tokenTtlSeconds,
      onRefresh,
    },
  );
}

/**
 * Asks the API server, with the plugin's token and the installer's view of the cluster (same server and CA), who the
 * token belongs to. Only a 401 means the token is refused: any other answer (even 403 or 404) comes after
 * authentication succeeded. No answer at all says nothing about the token.
 */
export function selfSubjectReviewProbe(installer: KubeConfig, timeoutMs = 30_000): ProbeToken {
  const cluster = installer.getCurrentCluster()!;
  return async (token) => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: 'plugin', token }],
      contexts: [{ name: 'plugin', cluster: cluster.name, user: 'plugin' }],
      currentContext: 'plugin',
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const review = kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      });
      // A hang guard: a check that never answers would never be repeated.
      const hung = new Promise<'unknown'>((resolve) => {
        timer = setTimeout(() => resolve('unknown'), timeoutMs);
      });
      return await Promise.race([review.then(() => 'accepted' as const), hung]);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 401) return 'rejected';
      return typeof code === 'number' ? 'accepted' : 'unknown';
    } finally {
      clearTimeout(timer);
    }
  };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/** Uninstall mode of the DaemonSet: report ready (nothing left installed) until SIGTERM. */
async function waitUninstalled(
  options: InstallerOptions,
  metrics: ReturnType<typeof createMetrics>,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<void> {
  const done = { ready: true, binary: false, kubeconfig: false, entry: false, reasons: [] };
  const server = options.readinessPort === 0 ? null : createHealthServer(() => Promise.resolve(done), metrics.registry);
  if (server) await new Promise<void>((resolve) => server.listen(options.readinessPort, resolve));
  log.info('uninstalled; waiting for SIGTERM');
  await new Promise<void>((resolve) => {
    if (!signal || signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
}

export async function main(argv: string[], env: NodeJS.ProcessEnv, io: MainIO): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err.write(`asm-cni-install: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  const { command, options } = parsed;
  if (command === 'help') {
    io.out.write(`${USAGE}\n`);
    return 0;
  }
  // The same line shape as the webhook's and the plugin's (ISO time, level label), so one pipeline reads all three.
  const log: Logger = pino(
    {
      base: { component: 'asm-cni-install' },
      level: 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    io.out,
  );
  const metrics = createMetrics();
  const kubeConfig = options.apiServer === null ? null : installerKubeConfig(options.apiServer, options.saDir);
  const api = kubeConfig?.makeApiClient(CoreV1Api) ?? null;
  const tokens = tokenSource(options, api, (reason) => {
    metrics.tokenRefreshes.inc({ reason });
    log.info({ reason }, 'new plugin token requested');
  });
  // Set once the repair controller exists; a rewritten binary or entry is a changed node: repair resumes.
  let repair: RepairController | null = null;
  const installer = new Installer({
    options,
    log,
    tokens,
    onWrite: (what) => {
      metrics.writes.inc({ what });
      if (what === 'binary' || what === 'entry') repair?.nodeChanged(`plugin ${what} rewritten`);
    },
  });

  if (command === 'uninstall') {
    await installer.loadConfig().catch(() => false); // uninstall must work even with a broken config
    await installer.uninstall();
    log.info({ netDir: options.netDir }, 'uninstalled');
    if (options.uninstallWait) await waitUninstalled(options, metrics, log, io.signal);
    return 0;
  }

  try {
    await installer.loadConfig();
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start without a valid config');
    return 1;
  }
  log.level = installer.sharedConfig.logLevel;

  if (command === 'once') {
    let failedPasses = 0;
    for (;;) {
      const r = await installer.reconcile();
      if (r.ready) {
        log.info('installed');
        return 0;
      }
      if (!r.binary || !r.kubeconfig) {
        log.error({ reasons: r.reasons }, 'install failed');
        return 1;
      }
      failedPasses = r.failures.length > 0 ? failedPasses + 1 : 0;
      if (failedPasses >= ONCE_MAX_FAILED_PASSES) {
        const reasons = r.failures.map((f) => `${f.step}: ${f.error}`);
        log.error({ reasons, passes: failedPasses }, `install failed: ${reasons.join('; ')}`);
        return 1;
      }
      if (io.signal?.aborted) return 1;
      // waiting for the primary CNI to write its config, or retrying a failed step
      await (io.sleep ?? sleep)(Math.min(options.resyncMs, 1000), io.signal);
    }
  }

  repair =
    api !== null && options.nodeName !== null
      ? new RepairController({
          api: podApiFrom(api),
          nodeName: options.nodeName,
          log,
          backoff: defaultBackoff(options.repairIntervalMs),
          onOutcome: (outcome) => metrics.repairs.inc({ outcome }),
        })
      : null;
  if (repair === null) log.warn('pod repair off: needs NODE_NAME and an API server');
  const watchDirs = [options.netDir, options.binDir, options.saDir];
  if (options.configPath !== null) watchDirs.push(path.dirname(options.configPath));
  const daemon = await startDaemon({
    installer,
    log,
    metrics,
    repair,
    tokenCheck:
      tokens instanceof TokenRequestSource && kubeConfig !== null
        ? new TokenCheck(tokens, selfSubjectReviewProbe(kubeConfig), {
            minIntervalMs: options.resyncMs,
            onRejected: () => log.warn("the API server refused the plugin's token; requesting a new one"),
          })
        : null,
    watchDirs,
    readinessPort: options.readinessPort === 0 ? null : options.readinessPort,
    resyncMs: options.resyncMs,
    repairIntervalMs: options.repairIntervalMs,
  });
  log.info({ port: daemon.port }, 'running; SIGTERM stops without removing anything');
  await new Promise<void>((resolve) => {
    if (io.signal?.aborted) return resolve();
    io.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  await daemon.stop();
  log.info('stopped; binary, kubeconfig and config entry left in place');
  return 0;
}
