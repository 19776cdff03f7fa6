// The kustomize install of docs/install.md on a one-node cluster (scheduler, controller-manager, kube-proxy, a real
// kubelet and containerd), run as the docs write it: certs/generate.sh, `kubectl apply -k` of the admin's overlay with
// the image built from the Dockerfile and the node's CNI dirs, later the upgrade to another tag and the documented
// uninstall. Nothing the cluster's controllers or the product make is made by the test: (a) the installer DaemonSet's
// pod installs the node and is Ready by its own probe, (b) the webhook's two replicas serve /mutate through their
// Service, (c) a meshed Deployment's pod runs redirected, (d) evicting a webhook pod (the PDB allows one) does not stop
// meshed pod creation, (e) no meshed pod created during the installer's rollout runs without redirection and without
// istio-init, (f) the uninstall restores the node and the next meshed pod keeps istio-init.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { kustomizeSteps } from '../harness/install-steps.js';
import { initNames } from '../harness/pods.js';
import { waitFor } from '../harness/wait.js';
import {
  checkInstaller,
  checkNextPodKeepsIstioInit,
  checkNodeRestored,
  checkRedirected,
  createMeshedPod,
  INSTALLER,
  installServeRedirect,
  isReady,
  NS,
  podsOf,
  ROLLOUT_DEADLINE_MS,
  runDocumented,
  startInstallEnv,
  waitInstallerRolledOut,
  waitWebhookReady,
  webhookPods,
} from './scenario.js';
import { clusterPrereqs } from './prereqs.js';

async function main(t: Test): Promise<void> {
  const env = await startInstallEnv(t);
  const { cluster, cp, site, pods, open } = env;
  const work = join(cp.dir, 'kustomize-install');
  let steps = kustomizeSteps(work, site);
  let current = site; // the image the overlay names now
  if (!(await installServeRedirect(t, env, steps, 'the documented kubectl apply -k'))) return;

  await t.test('(d) one webhook pod evicted (the PDB allows one of two): pod creation goes on', async (t) => {
    const [victim, other] = await waitWebhookReady(cp);
    await waitFor(
      'the disruption controller allowing one disruption',
      async () => (await cp.getJson(['get', 'pdb', '-n', NS, 'asm-cni-webhook'])).status?.disruptionsAllowed === 1,
      { timeoutMs: ROLLOUT_DEADLINE_MS, intervalMs: 1000 },
    );
    const evict = (name: string) =>
      cp.kubectl(['create', '--raw', `/api/v1/namespaces/${NS}/pods/${name}/eviction`, '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: NS } }),
      });
    const first = await evict(victim!.metadata.name);
    t.equal(first.code, 0, `the first eviction is allowed${first.code ? `: ${first.stderr}` : ''}`);
    const second = await evict(other!.metadata.name);
    t.not(second.code, 0, 'the second is refused while the first is down');
    t.match(second.stderr, /disruption budget/, 'by the PodDisruptionBudget');
    // Meshed pods (server-side dry runs: the whole admission chain) one after the other, until the evicted pod is gone
    // and its replacement Ready; each create is classed by what was seen right after it.
    const results: Array<{ code: number; stderr: string; rewritten: boolean; down: boolean }> = [];
    await waitFor(
      'the webhook Deployment back at two Ready replicas without the evicted pod',
      async () => {
        const r = await createMeshedPod(cp, open, undefined, true);
        const now = await webhookPods(cp);
        const down =
          now.some((p) => p.metadata.uid === victim!.metadata.uid) ||
          now.filter((p) => isReady(p) && !p.metadata.deletionTimestamp).length < 2;
        results.push({
          code: r.code,
          stderr: r.stderr,
          rewritten: !!r.stored && !initNames(r.stored).includes('istio-init'),
          down,
        });
        return !down;
      },
      { timeoutMs: ROLLOUT_DEADLINE_MS, intervalMs: 200 },
    );
    const whileDown = results.filter((r) => r.down);
    t.ok(whileDown.length > 0, `${whileDown.length} meshed pods were created while one replica was down`);
    const failed = results.filter((r) => r.code !== 0 || !r.rewritten);
    t.same(
      failed.map((r) => (r.code !== 0 ? `refused: ${r.stderr.trim()}` : 'admitted with istio-init')),
      [],
      `every one of ${results.length} meshed pods was admitted rewritten`,
    );
    await waitWebhookReady(cp);
  });
  if (!t.passing()) return;

  await t.test(
    '(e) the installer rolled to another image tag: no meshed pod runs unredirected meanwhile',
    async (t) => {
      const old = await waitInstallerRolledOut(cp);
      const next = await cluster.retag('rollout');
      current = { ...site, image: next };
      steps = kustomizeSteps(work, current); // the same overlay, the new tag (docs: "Upgrade")
      if (!(await runDocumented(t, steps, 'install', cp, current))) return;
      // One meshed pod per state of the installer pods seen, until the new one is Ready and the old one gone.
      const seen = new Set<string>();
      const created: Array<Awaited<ReturnType<typeof createMeshedPod>> & { state: string; during: boolean }> = [];
      await waitFor(
        'the installer DaemonSet rolled to the new tag',
        async () => {
          const now = await podsOf(cp, NS, `app.kubernetes.io/name=${INSTALLER}`);
          const oldPod = now.find((p) => p.metadata.uid === old.metadata.uid);
          const newReady = now.some((p) => p.metadata.uid !== old.metadata.uid && isReady(p));
          const state =
            now
              .map(
                (p) =>
                  `${p.metadata.name}:${p.metadata.deletionTimestamp ? 'terminating' : isReady(p) ? 'ready' : 'starting'}`,
              )
              .sort()
              .join(',') || 'no installer pod';
          if (!seen.has(state) && created.length < 8) {
            seen.add(state);
            // After the old installer was told to stop, before the new one is Ready: the window of the rollout.
            const during = oldPod ? !!oldPod.metadata.deletionTimestamp : !newReady;
            created.push({ ...(await createMeshedPod(cp, open, `rollout-${created.length + 1}`)), state, during });
          }
          return !oldPod && newReady;
        },
        { timeoutMs: ROLLOUT_DEADLINE_MS, intervalMs: 300 },
      );
      t.ok(
        created.some((c) => c.during),
        `meshed pods were created while no installer was up (states seen: ${created.map((c) => c.state).join(' | ')})`,
      );
      await checkInstaller(t, cluster, site, next);
      for (const c of created) {
        if (c.code !== 0) {
          // Fail closed is allowed: refused, never admitted unrewritten.
          t.match(c.stderr, /asm-cni/, `${c.name} (${c.state}) refused by the webhook's failurePolicy`);
          continue;
        }
        await checkRedirected(t, pods, { namespace: open, name: c.name });
      }
    },
  );
  if (!t.passing()) return;

  await t.test('(f) the documented uninstall (uninstall overlay, kubectl delete -k) restores the node', async (t) => {
    if (!(await runDocumented(t, steps, 'uninstall', cp, current))) return;
    checkNodeRestored(t, cluster);
    t.not((await cp.kubectl(['get', 'namespace', NS])).code, 0, `namespace ${NS} is gone`);
    await checkNextPodKeepsIstioInit(t, pods, open);
  });
}

if (clusterPrereqs(t)) await t.test('cluster: the kustomize install as docs/install.md writes it', main);
