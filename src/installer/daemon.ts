// The long-running side of `asm-cni-install run`: file watches plus a periodic resync drive the installer, the health
// listener serves /readyz, and the repair controller runs once the node is ready.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { watchFiles } from '../common/file-watch.js';
import { createHealthServer } from './health.js';
import type { Installer, Readiness } from './installer.js';
import type { InstallerMetrics } from './metrics.js';
import type { RepairController } from './repair.js';
import type { TokenCheck } from './token.js';

export interface DaemonOptions {
  installer: Installer;
  log: Logger;
  metrics: InstallerMetrics;
  repair: RepairController | null;
  /** Probes the plugin's token beside each pass; null when the token is not ours to renew (projected file token). */
  tokenCheck?: TokenCheck | null;
  /** Directories whose changes trigger a pass: net dir, config dir, service-account dir. */
  watchDirs: string[];
  /** Port of /readyz, /healthz, /metrics; null = no listener, 0 = any free port. */
  readinessPort: number | null;
  resyncMs: number;
  repairIntervalMs: number;
  /** Delay that coalesces a burst of file events into one pass. */
  debounceMs?: number;
}

export interface Daemon {
  /** Port of the health listener (0 when off). */
  port: number;
  /** Resolves after the pass that follows a file event or the resync timer (tests use it to wait). */
  reconcileNow(): Promise<Readiness>;
  /** Stops watching and serving. Installed files stay in place: new pods fail closed rather than start unmeshed. */
  stop(): Promise<void>;
}

export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  let stopped = false;
  let running: Promise<Readiness> | null = null;
  let lastReady = false;
  let retry: NodeJS.Timeout | null = null;
  let retryDelay = 0;

  const TOKEN_REFUSED = "the API server refuses the plugin's token and no new one could be had yet";
  /** Readiness with the token's state: a refused token fails every meshed pod's sandbox, so the node is not ready. */
  const withToken = (r: Readiness): Readiness =>
    o.tokenCheck?.pending ? { ...r, ready: false, reasons: [...r.reasons, TOKEN_REFUSED] } : r;

  // The token check runs beside the passes, never inside one: a slow or unreachable API server must not hold up
  // putting the entry back into a rewritten CNI config. A refusal triggers a pass, which requests a new token.
  let checking: Promise<void> | null = null;
  const checkToken = (): void => {
    if (!o.tokenCheck || checking || stopped) return;
    checking = o.tokenCheck
      .check()
      .catch((err: Error) => {
        o.log.warn({ err: err.message }, "could not check the plugin's token");
        return 'unknown' as const;
      })
      .then(async (verdict) => {
        checking = null;
        if (verdict !== 'rejected' || stopped) return;
        await reconcileNow();
        checkToken(); // the new token, at once
      });
  };

  const pass = async (): Promise<Readiness> => {
    watch.rewatch();
    checkToken();
    const r = withToken(await o.installer.reconcile());
    o.metrics.ready.set(r.ready ? 1 : 0);
    if (r.ready !== lastReady)
      o.log.info({ ready: r.ready, reasons: r.reasons }, r.ready ? 'node ready' : 'node not ready');
    lastReady = r.ready;
    // Not ready (a step failed, a file vanished under a racing writer, no primary config yet, no token the API server
    // accepts): try again soon, backing off from 250ms to the resync interval so a persistent failure never hammers
    // the API server.
    if (retry) clearTimeout(retry);
    retry = null;
    retryDelay = r.ready ? 0 : Math.min(retryDelay === 0 ? 250 : retryDelay * 2, o.resyncMs);
    if (!r.ready && !stopped) retry = setTimeout(() => void reconcileNow(), retryDelay);
    return r;
  };

  // One pass at a time. A request during a pass gets the one pass queued after it (so it sees the latest files).
  let queued: Promise<Readiness> | null = null;
  let last: Readiness = { ready: false, binary: false, kubeconfig: false, entry: false, reasons: ['not checked yet'] };
  const reconcileNow = (): Promise<Readiness> => {
    if (running) {
      queued ??= running.then(() => {
        queued = null;
        return reconcileNow();
      });
      return queued;
    }
    if (stopped) return Promise.resolve(last);
    running = pass()
      .catch((err: Error) => {
        o.log.error({ err: err.message }, 'reconcile failed');
        return { ready: false, binary: false, kubeconfig: false, entry: false, reasons: [err.message] };
      })
      .then((r) => (last = r))
      .finally(() => {
        running = null;
      });
    return running;
  };

  // A burst of file events (a CNI writing its config, our own write) becomes one pass; a directory that does not
  // exist yet is watched from the first pass after it appears.
  const watch = watchFiles({
    dirs: o.watchDirs,
    onChange: () => void reconcileNow(),
    debounceMs: o.debounceMs ?? 20,
    pollMs: 0, // the resync timer below is the poll
  });

  let server: Server | null = null;
  let port = 0;
  if (o.readinessPort !== null) {
    server = createHealthServer(async () => withToken(await o.installer.readiness()), o.metrics.registry);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(o.readinessPort, () => resolve());
    });
    port = (server.address() as AddressInfo).port;
  }

  const resync = setInterval(() => void reconcileNow(), o.resyncMs);
  // The pass in flight, if any: stop() waits for it, so no pod is deleted after stop() returned.
  let repairing: Promise<void> | null = null;
  const repair = setInterval(() => {
    if (!o.repair || !lastReady || repairing || !o.installer.sharedConfig.repairPods) return;
    repairing = o.repair
      .runOnce()
      .then(
        () => undefined,
        (err: Error) => o.log.error({ err: err.message }, 'repair pass failed'),
      )
      .finally(() => (repairing = null));
  }, o.repairIntervalMs);

  await reconcileNow();

  return {
    port,
    reconcileNow,
    async stop() {
      stopped = true;
      clearInterval(resync);
      if (retry) clearTimeout(retry);
      clearInterval(repair);
      watch.close();
      if (running) await running;
      if (checking) await checking;
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
      if (repairing) await repairing;
    },
  };
}
