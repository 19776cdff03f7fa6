// Prometheus metrics of the installer, served on the readiness port at /metrics.
import { Counter, Gauge, Registry } from 'prom-client';

export interface InstallerMetrics {
  registry: Registry;
  ready: Gauge;
  writes: Counter<'what'>;
  repairs: Counter<'outcome'>;
  tokenRefreshes: Counter<'reason'>;
}

export function createMetrics(): InstallerMetrics {
  const registry = new Registry();
  return {
    registry,
    ready: new Gauge({
      name: 'asm_cni_installer_ready',
      help: '1 when plugin binary, kubeconfig and CNI config entry are all in place',
      registers: [registry],
    }),
    writes: new Counter({
      name: 'asm_cni_installer_writes_total',
      help: 'Files (re)written by the installer, by what',
      labelNames: ['what'],
      registers: [registry],
    }),
    repairs: new Counter({
      name: 'asm_cni_installer_repaired_pods_total',
      help: 'Pods with a failed istio-validation init container acted on, by outcome (deleted, failed, no-controller, stopped)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    tokenRefreshes: new Counter({
      name: 'asm_cni_installer_token_refreshes_total',
      help: "New plugin tokens requested, by reason (initial, expiring, rejected: the API server refused the plugin's token)",
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
