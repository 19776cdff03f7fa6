// The Helm install path against a real kube-apiserver + etcd: `helm install` of charts/asm-cni as the README says
// (namespace created and labelled first), every object of the release stored by the API server, the webhook answering
// reviews with the certificate the chart generated, then `helm upgrade` keeping that certificate and caBundle (same CA,
// the running webhook still answers without a restart), then the documented uninstall (uninstall=true, helm uninstall).
// The webhook runs on loopback as in the admission scenarios: a post-renderer points the webhook configuration at it
// (clientConfig url, the chart's caBundle kept), and the chart's certificate gets 127.0.0.1 as an extra IP SAN.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { chartDir, helm, helmPath, parseObjects, TLS_SECRET, urlPostRenderer, objectKey } from '../harness/helm.js';
import { freePort } from '../harness/net.js';
import { waitFor } from '../harness/wait.js';
import { oraclesDir } from '../harness/oracles.js';
import { initNames, oraclePod, type Pod } from '../harness/pods.js';
import { requirePrereq } from '../harness/prereq.js';
import { toolchainMissing } from '../harness/toolchain.js';
import { startWebhook } from '../harness/webhook.js';

const NS = 'asm-cni';

interface Secret {
  data: Record<string, string>;
}
interface WebhookConfig {
  webhooks: Array<{ name: string; clientConfig: { url?: string; caBundle?: string } }>;
}

async function main(t: Test): Promise<void> {
  const missing = toolchainMissing();
  if (!requirePrereq(t, !missing, missing ?? '')) return;
  if (!requirePrereq(t, existsSync(helmPath()), `helm is not built (run bash test/setup/helm.sh)`)) return;
  if (!requirePrereq(t, existsSync(oraclesDir), `the Istio oracles are not at ${oraclesDir} (ASM_ORACLES)`)) return;

  const cp: ControlPlane = await startControlPlane();
  t.teardown(() => cp.stop());
  // helm's own cache, config and data under the control plane's temp dir: nothing of the user's is read or written.
  const helmEnv = {
    ...process.env,
    KUBECONFIG: cp.kubeconfigs.admin,
    HELM_CACHE_HOME: join(cp.dir, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(cp.dir, 'helm', 'config'),
    HELM_DATA_HOME: join(cp.dir, 'helm', 'data'),
  };
  const port = await freePort();
  const url = `https://127.0.0.1:${port}/mutate`;
  const releaseArgs = [
    ...['--namespace', NS, '--set', 'certificates.generate.extraIPs={127.0.0.1}'],
    ...['--post-renderer', urlPostRenderer, '--post-renderer-args', url],
  ];
  const runHelm = (args: string[]) => helm(args, { env: helmEnv, timeoutMs: 300_000 });
  const secretData = async () => (await cp.getJson<Secret>(['get', 'secret', '-n', NS, TLS_SECRET])).data;
  const storedConfig = () => cp.getJson<WebhookConfig>(['get', 'mutatingwebhookconfiguration', 'zz-asm-cni']);
  const appNs = await cp.namespace('e2e-helm-app', { labels: { 'istio-injection': 'enabled' } });
  let pods = 0;
  /** Creates an Istio-injected pod (Istio's golden) and returns what the API server stored. */
  const createInjectedPod = async (dryRun: boolean): Promise<Pod> => {
    const pod = oraclePod('classic-1.26.8', 'hello.yaml.injected', `hello-${++pods}`);
    const args = ['create', '-n', appNs, '-f', '-', '-o', 'json', ...(dryRun ? ['--dry-run=server'] : [])];
    const r = await cp.kubectl(args, { input: JSON.stringify(pod) });
    if (r.code !== 0) throw new Error(`creating ${pod.metadata.name} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Pod;
  };
  /** Waits until the API server's webhook configuration cache has the release's entry (it is then rewritten). */
  const waitRewritten = () =>
    waitFor(
      'the API server calling the webhook of the Helm release',
      async () => (initNames(await createInjectedPod(true)).includes('istio-init') ? undefined : true),
      { intervalMs: 300 },
    );

  await t.test('helm install stores every object of the chart in the real API server', async (t) => {
    // The README's Helm path: the namespace with its labels, then helm install.
    await cp.kubectlOk(['create', 'namespace', NS]);
    await cp.kubectlOk([
      'label',
      'namespace',
      NS,
      'pod-security.kubernetes.io/enforce=privileged',
      'istio-injection=disabled',
    ]);
    const r = await runHelm(['install', 'asm-cni', chartDir, ...releaseArgs]);
    t.equal(r.code, 0, `helm install succeeded${r.code ? `: ${r.stderr}` : ''}`);
    t.match(r.stdout, /rollout status ds\/asm-cni-installer/, 'NOTES.txt says how to check the install');
    const manifest = parseObjects((await runHelm(['get', 'manifest', 'asm-cni', '--namespace', NS])).stdout);
    t.ok(manifest.length > 10, `the release has ${manifest.length} objects`);
    for (const o of manifest) {
      const ns = o.metadata.namespace ? ['-n', o.metadata.namespace] : [];
      const got = await cp.kubectl(['get', o.kind, o.metadata.name, ...ns, '-o', 'name']);
      t.equal(got.code, 0, `${objectKey(o)} is stored`);
    }
    const hooks = (await storedConfig()).webhooks;
    const ca = (await secretData())['ca.crt'];
    t.ok(ca, 'the chart generated the CA');
    t.ok(
      hooks.every((w) => w.clientConfig.caBundle === ca && w.clientConfig.url === url),
      'every entry trusts the generated CA and calls the loopback webhook',
    );
  });

  // The webhook serves the certificate the chart generated (from the stored Secret), as the Deployment would.
  const certDir = join(cp.dir, 'helm-webhook-certs');
  mkdirSync(certDir, { recursive: true });
  const installed = await secretData();
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) {
    writeFileSync(join(certDir, f), Buffer.from(installed[f]!, 'base64'), { mode: 0o600 });
  }
  const webhook = await startWebhook({ dir: cp.dir, certDir, port });
  t.teardown(() => webhook.stop(1000));
  t.teardown(() => {
    if (!t.passing()) t.comment(`webhook log tail:\n${webhook.logs()}\n${cp.logs()}`);
  });

  await t.test('the webhook answers reviews with the chart-generated certificate', async (t) => {
    await waitRewritten();
    const stored = await createInjectedPod(false);
    t.equal(initNames(stored)[0], 'istio-validation', 'the stored pod starts with istio-validation');
    t.notOk(initNames(stored).includes('istio-init'), 'istio-init is gone');
    t.ok((await webhook.reviews({ outcome: 'patched' })) >= 1, 'the webhook counted the patch');
  });

  await t.test('helm upgrade keeps the certificate and the caBundle; the running webhook still answers', async (t) => {
    const before = await storedConfig();
    const r = await runHelm(['upgrade', 'asm-cni', chartDir, ...releaseArgs, '--set', 'config.logLevel=debug']);
    t.equal(r.code, 0, `helm upgrade succeeded${r.code ? `: ${r.stderr}` : ''}`);
    t.same(await secretData(), installed, 'the Secret is unchanged: same CA, same serving certificate');
    const after = await storedConfig();
    t.same(
      after.webhooks.map((w) => w.clientConfig.caBundle),
      before.webhooks.map((w) => w.clientConfig.caBundle),
      'every caBundle is unchanged',
    );
    const config = await cp.getJson<{ data: Record<string, string> }>(['get', 'configmap', '-n', NS, 'asm-cni-config']);
    t.match(config.data['config.yaml'], /logLevel: debug/, 'the upgrade applied the new value');
    const history = await runHelm(['history', 'asm-cni', '--namespace', NS, '-o', 'json']);
    t.equal((JSON.parse(history.stdout) as unknown[]).length, 2, 'two revisions');
    const stored = await createInjectedPod(false);
    t.notOk(initNames(stored).includes('istio-init'), 'a pod created after the upgrade is rewritten');
    t.ok(webhook.running(), 'the same webhook process, never restarted');
  });

  await t.test('uninstall as docs/install.md says: uninstall=true, then helm uninstall', async (t) => {
    const r = await runHelm([
      'upgrade',
      'asm-cni',
      chartDir,
      ...releaseArgs,
      '--reuse-values',
      '--set',
      'uninstall=true',
    ]);
    t.equal(r.code, 0, `helm upgrade --set uninstall=true succeeded${r.code ? `: ${r.stderr}` : ''}`);
    t.match(r.stdout, /uninstall mode/, 'NOTES.txt says what happens next');
    t.not((await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'zz-asm-cni'])).code, 0, 'zz-asm-cni is gone');
    const ds = await cp.getJson<{ spec: { template: { spec: { containers: Array<{ command: string[] }> } } } }>([
      ...['get', 'daemonset', '-n', NS, 'asm-cni-installer'],
    ]);
    t.ok(ds.spec.template.spec.containers[0]!.command.includes('uninstall'), 'the installers run in uninstall mode');
    t.equal((await runHelm(['uninstall', 'asm-cni', '--namespace', NS])).code, 0, 'helm uninstall succeeded');
    t.not((await cp.kubectl(['get', 'daemonset', '-n', NS, 'asm-cni-installer'])).code, 0, 'the DaemonSet is gone');
  });
}

t.test('Helm: install, webhook answering, upgrade keeping the caBundle, uninstall', main);
