// The Helm install of docs/install.md on a one-node cluster, as the docs write it: the labelled namespace, `helm
// install` with the documented values file (the image built from the Dockerfile, the node's CNI dirs, the plugin's
// log file), then the documented uninstall (uninstall=true, rollout, helm uninstall). The kustomize file
// (install.test.ts) covers the rest; here: the installer installs the node, the webhook serves through its Service
// with the chart's generated certificate, a meshed Deployment's pod runs redirected, and the uninstall restores it.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { helmSteps } from '../harness/install-steps.js';
import {
  checkNextPodKeepsIstioInit,
  checkNodeRestored,
  installServeRedirect,
  runDocumented,
  startInstallEnv,
} from './scenario.js';
import { clusterPrereqs } from './prereqs.js';

async function main(t: Test): Promise<void> {
  const env = await startInstallEnv(t);
  const { cp, site, pods, open } = env;
  const steps = helmSteps(join(cp.dir, 'helm-install'), site);
  if (!(await installServeRedirect(t, env, steps, 'the documented helm install'))) return;
  await t.test('(f) the documented uninstall (uninstall=true, helm uninstall) restores the node', async (t) => {
    if (!(await runDocumented(t, steps, 'uninstall', cp, site))) return;
    checkNodeRestored(t, env.cluster);
    await checkNextPodKeepsIstioInit(t, pods, open);
  });
}

if (clusterPrereqs(t)) await t.test('cluster: the Helm install as docs/install.md writes it', main);
