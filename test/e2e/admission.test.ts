// Scenarios 1-5 and 7 of the end-to-end suite: a real kube-apiserver calls the webhook (started with `npm start`) over
// TLS, with real PodSecurity admission and real RBAC. Every assertion is on what the API server stored or answered.
import t, { type Test } from 'tap';
import { requirePrereq, inCI } from '../harness/prereq.js';
import { toolchainMissing } from '../harness/toolchain.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { hasKustomization, render, ref, webhookConfigs, type MutatingWebhook } from '../harness/manifests.js';
import { startWebhook } from '../harness/webhook.js';
import { waitFor } from '../harness/wait.js';
import {
  addedCapabilities,
  initNames,
  oracleCniPod,
  oraclePod,
  plainPod,
  type Pod,
  type Shape,
} from '../harness/pods.js';
import { startFakeInjector } from '../harness/injector.js';
import {
  applyOverlay,
  bringUp,
  createPod,
  getPod,
  registerInjector,
  shape,
  shippedWebhooks,
  waitWebhookActive,
} from '../harness/scenario.js';

const BASELINE = {
  'pod-security.kubernetes.io/enforce': 'baseline',
  'pod-security.kubernetes.io/enforce-version': 'latest',
};
const PRIVILEGED_CAPS = ['NET_ADMIN', 'NET_RAW'];
// Where Istio injects (and where the webhook's late-injection entries select pods): see manifests/base/mutating-webhook.yaml.
const MESH = { 'istio-injection': 'enabled' };

async function main(t: Test): Promise<void> {
  const env = await bringUp(t);
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`webhook log tail:\n${env.webhook.logs()}\n${env.cp.logs()}`);
  });

  // 1. Every shipped object is accepted by the real API server.
  await t.test('1. kubectl apply -k of the manifests (local overlay: webhook at 127.0.0.1) is accepted', async (t) => {
    t.ok(env.shipped.length > 0, 'the manifests contain a MutatingWebhookConfiguration');
    const r = await applyOverlay(env);
    t.equal(r.code, 0, `kubectl apply -k succeeded${r.code ? `: ${r.stderr}` : ''}`);
    for (const obj of await render(env.cp, env.overlayDir)) {
      const args = [
        'get',
        obj.kind,
        obj.metadata.name,
        ...(obj.metadata.namespace ? ['-n', obj.metadata.namespace] : []),
      ];
      const got = await env.cp.kubectl([...args, '-o', 'json']);
      t.equal(got.code, 0, `${ref(obj)} is stored`);
    }
    const stored = await env.cp.getJson<{ webhooks: Array<{ clientConfig: { url?: string } }> }>([
      'get',
      'mutatingwebhookconfiguration',
      env.shipped[0]!.metadata.name,
    ]);
    t.equal(
      stored.webhooks[0]?.clientConfig.url,
      env.webhook.url,
      'the stored configuration calls the loopback webhook',
    );
    await waitWebhookActive(env, true);
  });

  // 2. The point of the product.
  for (const s of ['classic-1.26.8', 'native-master'] as Shape[]) {
    await t.test(
      `2. (${s}) an Istio-injected pod from a user with only "edit" passes PodSecurity baseline`,
      async (t) => {
        const ns = await env.cp.namespace('e2e-baseline', { labels: BASELINE, devEdit: true });
        const can = async (verb: string, res: string, n: string): Promise<string> =>
          (await env.cp.kubectl(['auth', 'can-i', verb, res, '-n', n], { as: 'dev' })).stdout.trim();
        t.equal(await can('create', 'pods', ns), 'yes', 'dev may create pods in the test namespace');
        t.equal(await can('create', 'pods', env.probeNs), 'no', 'dev has no rights outside it');
        t.equal(await can('update', 'namespaces', ns), 'no', 'dev cannot relabel the namespace');

        const input = oraclePod(s, 'hello.yaml.injected', 'hello');
        t.ok(initNames(input).includes('istio-init'), 'the input has istio-init');
        const before = await env.webhook.reviews({ outcome: 'patched' });
        const r = await createPod(env, ns, input, 'dev');
        t.equal(r.code, 0, `admitted${r.code ? `: ${r.stderr}` : ''}`);
        if (r.code !== 0) return;
        t.equal(
          await env.webhook.reviews({ outcome: 'patched' }),
          before + 1,
          'the webhook counted one patched review',
        );

        const stored = await getPod(env, ns, 'hello');
        const want = oracleCniPod(s, 'hello.yaml', 'hello');
        t.notOk(initNames(stored).includes('istio-init'), 'stored without istio-init');
        t.same(
          addedCapabilities(stored).filter((c) => PRIVILEGED_CAPS.includes(c)),
          [],
          'no container adds NET_ADMIN/NET_RAW',
        );
        t.strictSame(shape(stored), shape(want), "containers as Istio's CNI-mode injection renders them");
        const validation = stored.spec.initContainers?.[0];
        const wantValidation = want.spec.initContainers?.find((c) => c.name === 'istio-validation');
        t.equal(validation?.name, 'istio-validation', 'istio-validation is the first init container');
        t.strictSame(
          validation?.args,
          wantValidation?.args,
          'istio-validation args (--run-validation --skip-rule-apply)',
        );
        t.strictSame(
          validation?.securityContext,
          wantValidation?.securityContext,
          'istio-validation runs non-root, no added capabilities',
        );
        t.equal(validation?.image, wantValidation?.image, 'same image');
        const ann = stored.metadata.annotations ?? {};
        for (const [k, v] of Object.entries(want.metadata.annotations ?? {})) {
          if (k === 'sidecar.istio.io/status')
            t.strictSame(JSON.parse(ann[k] ?? 'null'), JSON.parse(v), `${k} lists istio-validation`);
          else t.equal(ann[k], v, `annotation ${k} for the plugin`);
        }
      },
    );
  }

  await t.test('2. without the webhook configuration, the same pod is rejected by PodSecurity baseline', async (t) => {
    const ns = await env.cp.namespace('e2e-baseline', { labels: BASELINE, devEdit: true });
    for (const c of env.shipped) await env.cp.kubectlOk(['delete', 'mutatingwebhookconfiguration', c.metadata.name]);
    t.teardown(async () => {
      await applyOverlay(env);
      await waitWebhookActive(env, true);
    });
    await waitWebhookActive(env, false);
    const r = await createPod(env, ns, oraclePod('classic-1.26.8', 'hello.yaml.injected', 'hello'), 'dev');
    t.not(r.code, 0, 'rejected');
    t.match(r.stderr, /violates PodSecurity "baseline:latest"/, 'by PodSecurity baseline');
    t.match(r.stderr, /NET_ADMIN/, 'naming the added capabilities');
    const get = await env.cp.kubectl(['get', 'pod', '-n', ns, 'hello']);
    t.match(get.stderr, /NotFound/, 'nothing stored');
  });

  // 3. Excluded namespaces are the webhook's business too (config excludeNamespaces, default kube-system, istio-system).
  await t.test('3. a pod in an excluded namespace is stored unchanged, istio-init included', async (t) => {
    const ns = await env.cp.namespace('', { name: 'istio-system' });
    const input = oraclePod('classic-1.26.8', 'hello.yaml.injected', 'hello-excluded');
    const total = await env.webhook.reviews();
    const excluded = await env.webhook.reviews({ outcome: 'skipped', reason: 'excluded-namespace' });
    const r = await createPod(env, ns, input);
    t.equal(r.code, 0, `admitted${r.code ? `: ${r.stderr}` : ''}`);
    const stored = await getPod(env, ns, 'hello-excluded');
    t.strictSame(shape(stored), shape(input), 'containers unchanged');
    t.strictSame(
      stored.spec.initContainers?.[0]?.args,
      input.spec.initContainers?.[0]?.args,
      'istio-init args unchanged',
    );
    t.same(
      stored.spec.initContainers?.[0]?.securityContext,
      input.spec.initContainers?.[0]?.securityContext,
      'istio-init keeps its capabilities',
    );
    t.strictSame(stored.metadata.annotations, input.metadata.annotations, 'annotations unchanged');
    const dTotal = (await env.webhook.reviews()) - total;
    const dExcluded = (await env.webhook.reviews({ outcome: 'skipped', reason: 'excluded-namespace' })) - excluded;
    t.equal(dTotal, dExcluded, 'if the webhook was called at all, it skipped with reason excluded-namespace');
  });

  // 4 and 5: a stand-in for Istio's injector, selecting pods like Istio's configuration, registered before and after ours.
  const injector = await startFakeInjector(env.webhook.certDir);
  t.teardown(() => injector.close());
  const ourNames = env.shipped.map((c) => c.metadata.name);

  /** Creates Istio's bare `hello` pod (plus `podLabels`) with the stand-in injector registered as `configName`. */
  async function injectInOrder(
    t: Test,
    configName: string,
    opts: { privileged?: boolean; nsLabels?: Record<string, string>; podLabels?: Record<string, string> } = {},
  ) {
    const nsLabels = opts.nsLabels ?? MESH;
    const ns = await env.cp.namespace(
      'e2e-order',
      opts.privileged ? { labels: nsLabels } : { labels: { ...BASELINE, ...nsLabels }, devEdit: true },
    );
    await registerInjector(t, env, injector, configName, ns, opts.podLabels);
    const input = oraclePod('classic-1.26.8', 'hello.yaml', 'hello');
    input.metadata.labels = { ...input.metadata.labels, ...opts.podLabels };
    const before = await reviewCounts();
    const r = await createPod(env, ns, input, opts.privileged ? 'admin' : 'dev');
    const stored = r.code === 0 ? await getPod(env, ns, 'hello') : undefined;
    const after = await reviewCounts();
    return {
      r,
      stored,
      calls: after.total - before.total,
      patched: after.patched - before.patched,
      skipped: after.skipped - before.skipped,
    };
  }
  const reviewCounts = async () => ({
    total: await env.webhook.reviews(),
    patched: await env.webhook.reviews({ outcome: 'patched' }),
    skipped: await env.webhook.reviews({ outcome: 'skipped' }),
  });

  /** The stored pod went through Istio's injection and our rewrite exactly once. */
  function rewrittenOnce(t: Test, stored: Pod): void {
    const names = [...initNames(stored), ...stored.spec.containers.map((c) => c.name)];
    t.equal(names.filter((n) => n === 'istio-proxy').length, 1, 'one istio-proxy');
    t.equal(names.filter((n) => n === 'istio-validation').length, 1, 'one istio-validation');
    t.notOk(names.includes('istio-init'), 'no istio-init');
    t.equal(initNames(stored)[0], 'istio-validation', 'istio-validation first');
    t.same(
      addedCapabilities(stored).filter((c) => PRIVILEGED_CAPS.includes(c)),
      [],
      'no container adds NET_ADMIN/NET_RAW',
    );
    const args = stored.spec.initContainers?.[0]?.args ?? [];
    t.equal(args.filter((a) => a === '--run-validation').length, 1, '--run-validation once');
    t.equal(args.filter((a) => a === '--skip-rule-apply').length, 1, '--skip-rule-apply once');
    const status = JSON.parse(stored.metadata.annotations?.['sidecar.istio.io/status'] ?? '{}');
    t.strictSame(status.initContainers, ['istio-validation'], 'status annotation names istio-validation once');
  }

  for (const [label, configName] of [
    ['before', 'aaa-e2e-istio-sidecar-injector'],
    ['after', 'zzz-e2e-istio-sidecar-injector'],
  ] as const) {
    await t.test(
      `4. injector configuration sorting ${label} ours (istio-injection=enabled): the stored pod is rewritten exactly once`,
      async (t) => {
        for (const ours of ourNames) {
          t.ok(label === 'before' ? configName < ours : configName > ours, `${configName} sorts ${label} ${ours}`);
          t.ok(
            ours > 'istio-sidecar-injector' && ours > 'istio-revision-tag-default',
            `${ours} sorts after Istio's istio-* configurations`,
          );
        }
        const { r, stored, calls, patched, skipped } = await injectInOrder(t, configName);
        t.equal(r.code, 0, `admitted in a baseline namespace${r.code ? `: ${r.stderr}` : ''}`);
        if (!stored) return;
        rewrittenOnce(t, stored);
        t.equal(patched, 1, 'the webhook patched exactly once');
        if (label === 'before') {
          // The istio-init entry rewrites; the late entry, next in the list, sees the rewritten pod and does not match.
          t.equal(calls, 1, 'one review: the late-injection entry was not called after the rewrite');
        } else {
          // First pass: the bare pod reaches the late entry (skipped); reinvocation after the injector: patched.
          t.equal(calls, 2, 'two reviews: the bare pod on the first pass, the injected pod on reinvocation');
          t.equal(skipped, 1, 'the bare pod was skipped');
        }
      },
    );
  }

  // The other ways Istio selects pods, with the injector after us (the order that needs the late entries).
  for (const [what, nsLabels, podLabels] of [
    ['namespace istio.io/rev=canary', { 'istio.io/rev': 'canary' }, {}],
    ['pod label sidecar.istio.io/inject=true', {}, { 'sidecar.istio.io/inject': 'true' }],
    ['pod label istio.io/rev=canary', {}, { 'istio.io/rev': 'canary' }],
  ] as const) {
    await t.test(`4. injector after ours, ${what}: the stored pod is rewritten exactly once`, async (t) => {
      const { r, stored, calls, patched } = await injectInOrder(t, 'zzz-e2e-istio-sidecar-injector-sel', {
        nsLabels,
        podLabels,
      });
      t.equal(r.code, 0, `admitted in a baseline namespace${r.code ? `: ${r.stderr}` : ''}`);
      if (!stored) return;
      rewrittenOnce(t, stored);
      t.equal(patched, 1, 'the webhook patched exactly once');
      t.equal(calls, 2, 'reached on the first pass and on reinvocation');
    });
  }

  // 5. Which pods reach the webhook at all.
  await t.test('5. pods that need no rewrite never reach the webhook; reinvocation does', async (t) => {
    for (const w of shippedWebhooks(env)) t.ok((w.matchConditions ?? []).length > 0, `${w.name} has matchConditions`);
    const plainNs = await env.cp.namespace('e2e-match', { labels: BASELINE, devEdit: true });
    const meshNs = await env.cp.namespace('e2e-match-mesh', { labels: { ...BASELINE, ...MESH }, devEdit: true });
    const optedOut = plainPod('opted-out');
    optedOut.metadata.labels = { ...optedOut.metadata.labels, 'sidecar.istio.io/inject': 'false' };
    for (const [what, ns, pod] of [
      ['a plain pod in a namespace without injection labels', plainNs, plainPod('plain')],
      ['a CNI-mode injected pod in a mesh namespace', meshNs, oracleCniPod('classic-1.26.8', 'hello.yaml', 'cni-mode')],
      [
        'a CNI-mode injected pod in a namespace without injection labels',
        plainNs,
        oracleCniPod('native-master', 'hello.yaml', 'cni-mode-native'),
      ],
      ['a pod labelled sidecar.istio.io/inject=false in a mesh namespace', meshNs, optedOut],
    ] as const) {
      const before = await env.webhook.reviews();
      const r = await createPod(env, ns, pod, 'dev');
      t.equal(r.code, 0, `${what}: admitted${r.code ? `: ${r.stderr}` : ''}`);
      t.strictSame(shape(await getPod(env, ns, pod.metadata.name)), shape(pod), `${what}: stored unchanged`);
      t.equal(await env.webhook.reviews(), before, `${what}: the review counter did not move`);
    }

    const { r, stored, calls, patched } = await injectInOrder(t, 'zzz-e2e-istio-sidecar-injector-2');
    t.equal(r.code, 0, `injected-after-us pod admitted${r.code ? `: ${r.stderr}` : ''}`);
    t.notOk(
      stored && initNames(stored).includes('istio-init'),
      'reinvocation removed the istio-init the injector added',
    );
    t.equal(calls, 2, 'the webhook was reached on the first pass and by reinvocation');
    t.equal(patched, 1, 'and patched the pod once');
  });

  // Whatever the order and the outcome above: redirection from exactly one place (never both, never neither).
  await t.test(
    '4. invariant in both orders: the stored pod has istio-init or istio-validation, never both or neither',
    async (t) => {
      for (const name of ['aaa-e2e-istio-injector-inv', 'zzz-e2e-istio-injector-inv']) {
        const { r, stored } = await injectInOrder(t, name, { privileged: true });
        t.equal(
          r.code,
          0,
          `${name}: admitted in a namespace without PodSecurity enforcement${r.code ? `: ${r.stderr}` : ''}`,
        );
        if (!stored) continue;
        const init = initNames(stored);
        const hasInit = init.includes('istio-init');
        const hasValidation = init.includes('istio-validation');
        t.ok(hasInit !== hasValidation, `${name}: exactly one of istio-init / istio-validation (${init.join(', ')})`);
        const caps = addedCapabilities(stored).filter((c) => PRIVILEGED_CAPS.includes(c));
        t.equal(caps.length > 0, hasInit, `${name}: NET_ADMIN/NET_RAW present exactly when istio-init is`);
      }
    },
  );

  // A value the plugin would refuse never reaches a node: the API server relays the webhook's denial to the user.
  await t.test(
    '2. a pod with an invalid traffic annotation is denied, and the user is told which and why',
    async (t) => {
      const ns = await env.cp.namespace('e2e-invalid', { labels: BASELINE, devEdit: true });
      const pod = oraclePod('classic-1.26.8', 'hello.yaml.injected', 'hello-bad');
      pod.metadata.annotations = {
        ...pod.metadata.annotations,
        'traffic.sidecar.istio.io/excludeOutboundIPRanges': '*',
      };
      const denied = await env.webhook.reviews({ outcome: 'denied' });
      const r = await createPod(env, ns, pod, 'dev');
      t.not(r.code, 0, 'rejected');
      t.match(r.stderr, /admission webhook "[^"]*" denied the request/, 'by our webhook');
      t.match(r.stderr, /traffic\.sidecar\.istio\.io\/excludeOutboundIPRanges/, 'naming the annotation');
      t.match(r.stderr, /"\*"/, 'and the value');
      t.equal(await env.webhook.reviews({ outcome: 'denied' }), denied + 1, 'counted as denied');
      t.match((await env.cp.kubectl(['get', 'pod', '-n', ns, 'hello-bad'])).stderr, /NotFound/, 'nothing stored');
    },
  );

  // 7. dryRun: same answer, nothing stored.
  await t.test('7. dryRun create returns the rewritten pod and stores nothing', async (t) => {
    const ns = await env.cp.namespace('e2e-dryrun', { labels: BASELINE, devEdit: true });
    const before = await env.webhook.reviews();
    const r = await createPod(env, ns, oraclePod('native-master', 'hello.yaml.injected', 'hello-dry'), 'dev', [
      '--dry-run=server',
      '-o',
      'json',
    ]);
    t.equal(r.code, 0, `dry-run admitted${r.code ? `: ${r.stderr}` : ''}`);
    if (r.code !== 0) return;
    const answered = JSON.parse(r.stdout) as Pod;
    t.equal(initNames(answered)[0], 'istio-validation', 'the answer is rewritten');
    t.notOk(initNames(answered).includes('istio-init'), 'without istio-init');
    t.ok((await env.webhook.reviews()) > before, 'the webhook was called for the dry run');
    const get = await env.cp.kubectl(['get', 'pod', '-n', ns, 'hello-dry']);
    t.match(get.stderr, /NotFound/, 'nothing was stored');
    const list = await env.cp.getJson<{ items: unknown[] }>(['get', 'pods', '-n', ns]);
    t.equal(list.items.length, 0, 'the namespace has no pods');
  });

  // Issue 10, defect 5: with the Multus component, a pod Istio rendered in CNI mode reaches the webhook (the API server
  // evaluates the component's wider matchConditions) and is stored naming the plugin's network. Base (scenario 5)
  // leaves it alone. The configuration is the component rendered by kubectl kustomize, renamed, calling a second
  // webhook that runs the component's shared config.
  await t.test('5. (Multus component) a CNI-mode pod reaches the webhook and is stored with the network', async (t) => {
    const overlay = join(env.cp.dir, 'overlay-multus');
    mkdirSync(overlay, { recursive: true });
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        `resources: [${relative(overlay, env.manifestsCopy)}]`,
        `components: [${relative(overlay, join(env.manifestsCopy, 'components', 'multus'))}]`,
        '',
      ].join('\n'),
    );
    const objects = await render(env.cp, overlay);
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'asm-cni-config')!;
    const [config] = webhookConfigs(objects);
    t.ok(config, 'the component renders a MutatingWebhookConfiguration');
    const dir = join(env.cp.dir, 'webhook-multus');
    mkdirSync(dir, { recursive: true });
    const multus = await startWebhook({
      dir,
      certDir: env.webhook.certDir,
      config: (configMap as unknown as { data: Record<string, string> }).data['config.yaml'],
    });
    t.teardown(() => multus.stop(1000));
    const caBundle = Buffer.from(multus.caPem).toString('base64');
    const name = 'zz-asm-cni-multus-e2e';
    const webhooks = (config!.webhooks as MutatingWebhook[]).map((w) => ({
      ...w,
      clientConfig: { url: multus.url, caBundle },
    }));
    const created = await env.cp.kubectl(['create', '-f', '-'], {
      input: JSON.stringify({ ...config, metadata: { ...config!.metadata, name }, webhooks }),
    });
    t.equal(created.code, 0, `the component's configuration is accepted${created.code ? `: ${created.stderr}` : ''}`);
    t.teardown(() => env.cp.kubectl(['delete', 'mutatingwebhookconfiguration', name]));

    const ns = await env.cp.namespace('e2e-multus', { labels: BASELINE, devEdit: true });
    const networks = (p: Pod): string | undefined => p.metadata.annotations?.['k8s.v1.cni.cncf.io/networks'];
    let probe = 0;
    // The API server picks the new configuration up asynchronously: wait for it with a dry run (a hang guard only).
    await waitFor(
      'the API server calling the Multus-mode webhook',
      async () => {
        const pod = oracleCniPod('classic-1.26.8', 'hello.yaml', `multus-probe-${++probe}`);
        const r = await createPod(env, ns, pod, 'admin', ['--dry-run=server', '-o', 'json']);
        return r.code === 0 && networks(JSON.parse(r.stdout) as Pod) !== undefined ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    for (const [shapeName, podName] of [
      ['classic-1.26.8', 'cni-multus'],
      ['native-master', 'cni-multus-native'],
    ] as const) {
      const pod = oracleCniPod(shapeName, 'hello.yaml', podName);
      const before = await multus.reviews({ reason: 'multus-network-added' });
      const r = await createPod(env, ns, pod, 'dev');
      t.equal(r.code, 0, `${shapeName}: admitted${r.code ? `: ${r.stderr}` : ''}`);
      const stored = await getPod(env, ns, podName);
      t.equal(networks(stored), 'default/asm-cni', `${shapeName}: stored naming default/asm-cni`);
      t.strictSame(shape(stored), shape(pod), `${shapeName}: containers unchanged`);
      t.equal(
        await multus.reviews({ reason: 'multus-network-added' }),
        before + 1,
        `${shapeName}: one review added it`,
      );
    }
  });

  if (inCI()) t.comment('CI=true: every prerequisite above was mandatory');
}

const missing = toolchainMissing();
if (
  requirePrereq(t, missing === undefined, missing ?? '') &&
  requirePrereq(t, hasKustomization(), 'manifests/ has no kustomization.yaml yet')
) {
  // One parent test: the root test may end while top-level code awaits between subtests.
  await t.test('admission: the API server calls the webhook', (t) => main(t));
}
