// Shared steps of the scenarios: bringing up control plane + webhook + shipped webhook configuration, creating pods,
// and waiting until the API server's view of the webhook configurations has caught up.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions, type Who } from './control-plane.js';
import { startWebhook, type Webhook } from './webhook.js';
import {
  copyManifests,
  hasKustomization,
  render,
  webhookConfigs,
  writeLocalOverlay,
  type K8sObject,
  type MutatingWebhook,
} from './manifests.js';
import { initNames, oraclePod, plainPod, type Pod } from './pods.js';
import { injectorConfig, type FakeInjector } from './injector.js';
import { waitFor } from './wait.js';
import type { RunResult } from './proc.js';

export interface Env {
  cp: ControlPlane;
  webhook: Webhook;
  overlayDir: string;
  /** The copy of manifests/ (with manifests/tls filled) the overlay builds on. */
  manifestsCopy: string;
  /** Every object of manifests/, rendered. */
  rendered: K8sObject[];
  /** The shipped MutatingWebhookConfiguration(s), as rendered from manifests/. */
  shipped: K8sObject[];
  probeNs: string;
}

/** Control plane, then the webhook via `npm start`; both torn down by t.teardown (and by exit hooks on a crash). */
export async function bringUp(t: Test, opts: ControlPlaneOptions = {}): Promise<Env> {
  const cp = await startControlPlane(opts);
  t.teardown(() => cp.stop());
  const certDir = join(cp.dir, 'webhook-certs');
  mkdirSync(certDir, { recursive: true });
  const webhook = await startWebhook({ dir: cp.dir, certDir });
  // At the end of a file there is nothing left to drain: a short grace keeps teardown quick.
  t.teardown(() => webhook.stop(1000));
  const probeNs = await cp.namespace('e2e-probe');
  const manifestsCopy = copyManifests(cp.dir, certDir);
  const rendered = hasKustomization() ? await render(cp, manifestsCopy) : [];
  return {
    cp,
    webhook,
    overlayDir: join(cp.dir, 'overlay'),
    manifestsCopy,
    rendered,
    shipped: webhookConfigs(rendered),
    probeNs,
  };
}

export function shippedWebhooks(env: Env): MutatingWebhook[] {
  return env.shipped.flatMap((c) => c.webhooks as MutatingWebhook[]);
}

/** kubectl apply -k of the local overlay (manifests + clientConfig pointing at the loopback webhook). */
export async function applyOverlay(env: Env): Promise<RunResult> {
  await writeLocalOverlay(env.cp, env.manifestsCopy, env.overlayDir, env.webhook.url, env.webhook.caPem);
  return env.cp.kubectl(['apply', '-k', env.overlayDir], { timeoutMs: 120_000 });
}

export async function createPod(
  env: Env,
  ns: string,
  pod: Pod,
  as: Who = 'admin',
  extra: string[] = [],
): Promise<RunResult> {
  return env.cp.kubectl(['create', '-n', ns, '-f', '-', ...extra], { as, input: JSON.stringify(pod) });
}

export async function getPod(env: Env, ns: string, name: string): Promise<Pod> {
  return env.cp.getJson<Pod>(['get', 'pod', '-n', ns, name]);
}

let probes = 0;
/** Dry-run creates an Istio-injected pod in the probe namespace; true when the API server had it rewritten. */
async function probeRewrites(env: Env): Promise<boolean> {
  const pod = oraclePod('classic-1.26.8', 'hello.yaml.injected', `probe-${++probes}`);
  const r = await createPod(env, env.probeNs, pod, 'admin', ['--dry-run=server', '-o', 'json']);
  if (r.code !== 0) throw new Error(`probe create failed: ${r.stderr}`);
  return !initNames(JSON.parse(r.stdout) as Pod).includes('istio-init');
}

/** Waits until the API server calls (active=true) or no longer calls (false) our webhook. */
export async function waitWebhookActive(env: Env, active: boolean): Promise<void> {
  await waitFor(
    `API server ${active ? 'calling' : 'no longer calling'} the asm-cni webhook`,
    async () => ((await probeRewrites(env)) === active ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 300 },
  );
}

/** The pod's container lists by name, for readable assertions. */
export const shape = (pod: Pod): { init: string[]; containers: string[] } => ({
  init: initNames(pod),
  containers: pod.spec.containers.map((c) => c.name),
});

/**
 * Registers the stand-in injector under `configName` for namespace `ns` (deleted again by t.teardown) and waits until
 * the API server calls it for a pod carrying `podLabels` (the pod-level selections need them).
 */
export async function registerInjector(
  t: Test,
  env: Env,
  injector: FakeInjector,
  configName: string,
  ns: string,
  podLabels: Record<string, string> = {},
): Promise<void> {
  await env.cp.kubectlOk(['apply', '-f', '-'], {
    input: injectorConfig(configName, injector.url, env.webhook.caPem, ns),
  });
  t.teardown(() => env.cp.kubectl(['delete', 'mutatingwebhookconfiguration', configName]));
  await waitFor(
    `the API server calling the stand-in injector ${configName}`,
    async () => {
      const calls = injector.calls;
      const probe = plainPod(`probe-${++probes}`);
      probe.metadata.labels = { ...probe.metadata.labels, ...podLabels };
      await createPod(env, ns, probe, 'admin', ['--dry-run=server', '-o', 'json']);
      return injector.calls > calls ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 300 },
  );
}
