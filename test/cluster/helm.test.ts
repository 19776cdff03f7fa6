// The Helm install of docs/install.md on a one-node cluster, as the docs write it: the labelled namespace, `helm
// install` with the documented values file (the image built from the Dockerfile, the node's CNI dirs, the plugin's
// log file), then the documented uninstall (uninstall=true, rollout, helm uninstall). The kustomize file
// (install.test.ts) covers the rest; here: the installer installs the node, the webhook serves through its Service
// with the chart's generated certificate, a meshed Deployment's pod runs redirected, and the uninstall restores it.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCluster } from '../harness/cluster.js';
import { helmSteps } from '../harness/install-steps.js';
import { logTail } from '../harness/proc.js';
import { IMAGES } from '../node/pods.js';
import {
  BASELINE,
  checkInstaller,
  checkNextPodKeepsIstioInit,
  checkNodeRestored,
  checkRedirected,
  checkWebhookThroughService,
  createMeshedDeployment,
  meshNamespace,
  runDocumented,
  siteOf,
} from './scenario.js';
import { clusterPrereqs } from './prereqs.js';

async function main(t: Test): Promise<void> {
  const cluster = await startCluster(t, { images: IMAGES });
  const { cp } = cluster;
  const { site, pods } = siteOf(cluster);
  t.teardown(() => {
    if (!t.passing()) t.comment(`${cluster.logs()}\n--- asm-cni plugin ---\n${logTail(pods.pluginLog, 30)}`);
  });
  const steps = helmSteps(join(cp.dir, 'helm-install'), site);
  const bookinfo = await meshNamespace(cp, 'bookinfo', BASELINE);
  const open = await meshNamespace(cp, 'mesh-open', {});

  await t.test('the documented helm install: the installer DaemonSet installs the node', async (t) => {
    if (await runDocumented(t, steps, 'install', cp, site)) await checkInstaller(t, cluster, site);
  });
  if (!t.passing()) return;
  await t.test('the webhook, with the certificate the chart generated, serves /mutate through its Service', (t) =>
    checkWebhookThroughService(t, cp, bookinfo),
  );
  if (!t.passing()) return;
  await t.test('a meshed Deployment: its pod runs redirected', async (t) => {
    await checkRedirected(t, pods, await createMeshedDeployment(cp, bookinfo));
  });
  if (!t.passing()) return;
  await t.test('the documented uninstall (uninstall=true, helm uninstall) restores the node', async (t) => {
    if (!(await runDocumented(t, steps, 'uninstall', cp, site))) return;
    checkNodeRestored(t, cluster);
    await checkNextPodKeepsIstioInit(t, pods, open);
  });
}

if (clusterPrereqs(t)) await t.test('cluster: the Helm install as docs/install.md writes it', main);
