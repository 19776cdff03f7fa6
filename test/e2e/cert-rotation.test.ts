// Certificate renewal and CA rotation while pods are being created (issue 22). A real kube-apiserver calls the webhook
// process, which serves from a directory laid out like a kubelet Secret volume. Each documented step runs as
// docs/install.md says (certs/generate.sh into manifests/tls, kubectl apply -k) while a loop creates meshed pods
// (server dry-run); the mounted Secret is updated the way the kubelet does it (an atomic `..data` swap) some time after
// the apply. Every step must refuse nothing. The same steps with today's procedure before this issue (a new CA each
// time, `--force`) must refuse pods: the proof that the test can fail.
//
// No step is timed. The kubelet's delay is modelled by a number of completed pod bursts; every wait is for an event
// (a pod burst, a reload the webhook reports, a connection the API server opens) with a deadline that only catches a
// hang.
import t, { type Test } from 'tap';
import https from 'node:https';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirePrereq } from '../harness/prereq.js';
import { toolchainMissing } from '../harness/toolchain.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { hasKustomization, manifestsDir, render, webhookConfigs, type MutatingWebhook } from '../harness/manifests.js';
import { initNames, oraclePod, type Pod } from '../harness/pods.js';
import { AtomicDir } from '../harness/atomic-volume.js';
import { reissueCA } from '../harness/certs.js';
import { startProcess, logTail, type Managed } from '../harness/proc.js';
import { freePort, httpGet, httpsGet } from '../harness/net.js';
import { waitFor } from '../harness/wait.js';
import { sumCounter } from '../harness/webhook.js';
import { repoRoot } from '../harness/toolchain.js';
import { existsSync } from 'node:fs';

/** Concurrent creations per burst. */
const BURST = 8;
/**
 * Every WIDE_EVERY-th burst is wider than the 25 idle connections client-go keeps per host, so the API server opens new
 * connections to the webhook: each one a TLS handshake against the certificate served at that moment. Without them
 * the API server could go on reusing connections from before a switch, and a step would pass without its new
 * certificate ever being checked.
 */
const WIDE_BURST = 40;
const WIDE_EVERY = 4;
/** Bursts between an apply and the kubelet's volume sync, and after the webhook switched: the "some time". */
const SYNC_DELAY_BURSTS = 4;
/** Deadline of any single wait: catches a hang, never a slow machine. */
const HANG_MS = 300_000;

interface Outcome {
  rewritten: number;
  refused: string[];
}

/** Creates meshed pods (server dry-run) in bursts until stopped, counting what the API server answered. */
class PodLoop {
  bursts = 0;
  readonly outcome: Outcome = { rewritten: 0, refused: [] };
  private stopped = false;
  readonly done: Promise<void>;
  constructor(private readonly create: () => Promise<{ status: number; body: string }>) {
    this.done = this.run();
  }
  private async run(): Promise<void> {
    while (!this.stopped) {
      const answers = await Promise.all(
        Array.from({ length: this.bursts % WIDE_EVERY === WIDE_EVERY - 1 ? WIDE_BURST : BURST }, () =>
          this.create().catch((err: Error) => ({ status: 0, body: JSON.stringify({ message: err.message }) })),
        ),
      );
      for (const a of answers) {
        if (a.status === 201 && !initNames(JSON.parse(a.body) as Pod).includes('istio-init')) this.outcome.rewritten++;
        else this.outcome.refused.push(`${a.status}: ${messageOf(a.body)}`);
      }
      this.bursts++;
    }
  }
  /** Resolves after n more bursts have completed. */
  async afterBursts(n: number): Promise<void> {
    const target = this.bursts + n;
    await waitFor(`${n} pod bursts`, async () => (this.bursts >= target ? true : undefined), {
      timeoutMs: HANG_MS,
      intervalMs: 50,
    });
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

const messageOf = (body: string): string => {
  try {
    return String((JSON.parse(body) as { message?: string }).message ?? body);
  } catch {
    return body;
  }
};

/** POST a pod with dryRun=All as the admin, straight to the API server (no kubectl process per pod). */
function dryRunCreate(cp: ControlPlane, ns: string, pod: Pod): Promise<{ status: number; body: string }> {
  const body = JSON.stringify(pod);
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${cp.url}/api/v1/namespaces/${ns}/pods?dryRun=All`,
      {
        method: 'POST',
        ca: cp.caPem,
        agent: false,
        timeout: HANG_MS,
        headers: {
          authorization: `Bearer ${cp.tokens.admin}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('dry-run create hung')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A TCP relay in front of the webhook that counts connections: each one is a TLS handshake the API server made, so a
 * connection counted after the webhook switched certificates proves the API server checked the new one.
 */
async function startRelay(target: number): Promise<{ port: number; connections: () => number; close(): void }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    connections++;
    const up = net.connect(target, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => {
        down.destroy();
        up.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    down.pipe(up);
    up.pipe(down);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    connections: () => connections,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const pemCount = (pem: string): number => pem.split('-----BEGIN CERTIFICATE-----').length - 1;
/** What an admin compares with the metric: `openssl x509 -noout -fingerprint -sha256`. */
const fingerprint = (file: string): string =>
  /Fingerprint=([0-9A-F:]+)/.exec(
    spawnSync('openssl', ['x509', '-in', file, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }).stdout,
  )![1]!;

async function main(t: Test): Promise<void> {
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const ns = await cp.namespace('e2e-certs');

  // The documented layout: a copy of manifests/ whose tls/ certs/generate.sh fills, as `--out manifests/tls`.
  const manifests = join(cp.dir, 'manifests');
  cpSync(manifestsDir, manifests, { recursive: true });
  const tlsDir = join(manifests, 'tls');
  const generate = (args: string[]): void => {
    const r = spawnSync('bash', [join(repoRoot, 'certs/generate.sh'), '--out', tlsDir, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`certs/generate.sh ${args.join(' ')}: ${r.stderr}`);
  };
  generate([]);

  // The webhook behind the counting relay; the overlay points every webhook entry at the relay by URL and keeps the
  // caBundle manifests/kustomization.yaml builds (the wiring under test).
  const webhookPort = await freePort();
  const metricsPort = await freePort();
  const relay = await startRelay(webhookPort);
  t.teardown(() => relay.close());
  const url = `https://127.0.0.1:${relay.port}/mutate`;
  const overlay = join(cp.dir, 'overlay');
  mkdirSync(overlay);
  const configs = webhookConfigs(await render(cp, manifests));
  const patches = configs.map((c) => {
    const ops = (c.webhooks as MutatingWebhook[]).flatMap((_, i) => [
      { op: 'remove', path: `/webhooks/${i}/clientConfig/service` },
      { op: 'add', path: `/webhooks/${i}/clientConfig/url`, value: url },
    ]);
    return `- target:\n    kind: MutatingWebhookConfiguration\n    name: ${c.metadata.name}\n  patch: '${JSON.stringify(ops)}'\n`;
  });
  writeFileSync(
    join(overlay, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../manifests\npatches:\n${patches.join('')}`,
  );
  const apply = async (): Promise<void> => {
    const r = await cp.kubectl(['apply', '-k', overlay], { timeoutMs: HANG_MS });
    if (r.code !== 0) throw new Error(`kubectl apply -k: ${r.stderr}`);
  };
  const storedBundles = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const c of configs) {
      const got = await cp.getJson<{ webhooks: MutatingWebhook[] }>([
        'get',
        'mutatingwebhookconfiguration',
        c.metadata.name,
      ]);
      for (const w of got.webhooks) out.push(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString());
    }
    return out;
  };

  // The kubelet's part: the Secret as stored in the API server, written into the volume with an atomic ..data swap.
  const volume = new AtomicDir(join(cp.dir, 'secret-volume'));
  const kubeletSync = async (): Promise<void> => {
    const secret = await cp.getJson<{ data: Record<string, string> }>([
      'get',
      'secret',
      '-n',
      'asm-cni',
      'asm-cni-webhook-tls',
    ]);
    volume.write(Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64')])));
  };

  await apply();
  await kubeletSync();
  const webhook: Managed = startProcess(
    'webhook',
    process.execPath,
    [
      join(repoRoot, 'dist/webhook/server/cli.js'),
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      String(webhookPort),
      '--metrics-port',
      String(metricsPort),
      '--cert',
      volume.file('tls.crt'),
      '--key',
      volume.file('tls.key'),
      '--ca',
      volume.file('ca.crt'),
    ],
    { logFile: join(cp.dir, 'webhook.log'), env: { ...process.env, NODE_ENV: 'production' } },
  );
  t.teardown(() => webhook.stop(1000));
  t.teardown(() => {
    if (t.passing()) return;
    const lines = logTail(webhook.logFile, 2000)
      .split('\n')
      .filter((l) => !l.includes('"msg":"review"'));
    t.comment(`webhook log (reviews left out):\n${lines.slice(-40).join('\n')}\n${cp.logs()}`);
  });
  const metrics = async (): Promise<string> => {
    const r = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}`);
    return r.body;
  };
  const served = async (): Promise<{ sha256: string; caSha256: string; reloads: number }> => {
    const text = await metrics();
    const info = /^asm_cni_webhook_cert_info\{([^}]*)\} 1$/m.exec(text)?.[1] ?? '';
    return {
      sha256: /sha256="([^"]*)"/.exec(info.replace(/ca_sha256="[^"]*"/, ''))?.[1] ?? '',
      caSha256: /ca_sha256="([^"]*)"/.exec(info)?.[1] ?? '',
      reloads: sumCounter(text, 'asm_cni_webhook_cert_reloads_total', {}),
    };
  };
  await waitFor(
    'the webhook serving',
    async () => {
      const r = await httpsGet(`https://127.0.0.1:${webhookPort}/readyz`, {
        ca: readFileSync(join(tlsDir, 'ca-bundle.crt')),
      });
      return r.status === 200 ? true : undefined;
    },
    {
      timeoutMs: HANG_MS,
      intervalMs: 300,
      abort: () => (webhook.hasExited() ? `exited:\n${logTail(webhook.logFile)}` : undefined),
    },
  );

  const pod = oraclePod('classic-1.26.8', 'hello.yaml.injected', 'rotation-probe');
  const loop = new PodLoop(() => dryRunCreate(cp, ns, pod));
  t.teardown(() => loop.stop());
  await loop.afterBursts(2);
  t.equal(
    loop.outcome.refused.length,
    0,
    `before any step every pod is rewritten${loop.outcome.refused
      .slice(0, 1)
      .map((m) => `: ${m}`)
      .join('')}`,
  );
  t.ok(loop.outcome.rewritten > 0, 'the loop creates meshed pods through the webhook');

  /**
   * One documented step: generate, apply, and (SYNC_DELAY_BURSTS bursts later) the kubelet's swap of the volume; then
   * waits until the webhook reports the reload and the API server opened a new connection to it after that (so it
   * checked what is served now), and a few more bursts. Returns the refusals seen from the apply on.
   */
  async function step(t: Test, change: string[] | (() => void), check?: () => Promise<void>): Promise<string[]> {
    const refusedBefore = loop.outcome.refused.length;
    const { reloads } = await served();
    if (Array.isArray(change)) generate(change);
    else change();
    await apply();
    await check?.();
    await loop.afterBursts(SYNC_DELAY_BURSTS);
    await kubeletSync();
    await waitFor(
      'the webhook reloading the swapped volume',
      async () => ((await served()).reloads > reloads ? true : undefined),
      {
        timeoutMs: HANG_MS,
        intervalMs: 200,
      },
    );
    const connectionsAtSwitch = relay.connections();
    await waitFor(
      'a new connection from the API server to the switched webhook',
      async () => (relay.connections() > connectionsAtSwitch ? true : undefined),
      { timeoutMs: HANG_MS, intervalMs: 100 },
    );
    await loop.afterBursts(SYNC_DELAY_BURSTS);
    const refused = loop.outcome.refused.slice(refusedBefore);
    t.comment(
      `${Array.isArray(change) ? change.join(' ') : t.name}: ${refused.length} refused; ${relay.connections()} connections so far`,
    );
    return refused;
  }

  await t.test('renewal with the same CA (--renew) refuses no pod', async (t) => {
    const bundle = readFileSync(join(tlsDir, 'ca-bundle.crt'), 'utf8');
    const refused = await step(t, ['--renew'], async () => {
      t.same(
        await storedBundles(),
        configs.flatMap((c) => c.webhooks.map(() => bundle)),
        'caBundle unchanged by the apply',
      );
    });
    t.same(refused, [], 'zero refusals');
    t.equal(
      (await served()).sha256,
      fingerprint(join(tlsDir, 'tls.crt')),
      'the webhook serves the renewed certificate',
    );
  });

  await t.test('CA rotation: start, switch, finish refuse no pod', async (t) => {
    const oldCa = fingerprint(join(tlsDir, 'ca.crt'));
    const started = await step(t, ['--ca-rotation', 'start'], async () => {
      // What docs/install.md says to check before switch: the stored caBundle holds both CAs.
      const stored = await storedBundles();
      t.ok(
        stored.every((b) => pemCount(b) === 2),
        `every webhook's stored caBundle holds two CAs (${stored.map(pemCount).join(',')})`,
      );
      t.ok(
        stored.every((b) => b === readFileSync(join(tlsDir, 'ca-bundle.crt'), 'utf8')),
        'the bundle generate.sh wrote',
      );
    });
    t.same(started, [], 'start: zero refusals');
    t.equal((await served()).caSha256, oldCa, 'start: still serving the certificate of the old CA');

    const switched = await step(t, ['--ca-rotation', 'switch']);
    t.same(switched, [], 'switch: zero refusals');
    // What docs/install.md says to check before finish: every replica serves the new certificate, from the new CA.
    const now = await served();
    t.equal(now.sha256, fingerprint(join(tlsDir, 'tls.crt')), 'switch: the webhook serves the new certificate');
    t.equal(now.caSha256, fingerprint(join(tlsDir, 'ca.crt')), 'switch: issued by the new CA');
    t.not(now.caSha256, oldCa);

    const finished = await step(t, ['--ca-rotation', 'finish'], async () => {
      t.ok(
        (await storedBundles()).every((b) => pemCount(b) === 1),
        'finish: the stored caBundle holds one CA',
      );
    });
    t.same(finished, [], 'finish: zero refusals');
  });

  // cert-manager renews the serving certificate as --renew does (same CA Issuer); its CA Certificate is renewed with
  // rotationPolicy Never: a new CA certificate for the same key, subject and key identifier, which the cainjector puts
  // into caBundle while the pods still serve the certificate issued under the old one.
  await t.test(
    'cert-manager: a CA certificate renewed with the same key (rotationPolicy Never) refuses no pod',
    async (t) => {
      const before = fingerprint(join(tlsDir, 'ca.crt'));
      const refused = await step(t, () => {
        const r = reissueCA(join(tlsDir, 'ca.key'), join(tlsDir, 'ca.crt'), 3650);
        if (r.status !== 0) throw new Error(`openssl req: ${r.stderr}`);
        cpSync(join(tlsDir, 'ca.crt'), join(tlsDir, 'ca-bundle.crt'));
      });
      t.not(fingerprint(join(tlsDir, 'ca.crt')), before, 'a different CA certificate is in caBundle now');
      t.same(refused, [], 'zero refusals');
      t.equal(
        (await served()).caSha256,
        fingerprint(join(tlsDir, 'ca.crt')),
        'the served certificate verifies under it',
      );
    },
  );

  await t.test("control: today's procedure (a new CA each time, --force) refuses pods", async (t) => {
    const refused = await step(t, ['--force']);
    t.ok(refused.length > 0, `refusals seen (${refused.length})`);
    t.match(
      refused[0] ?? '',
      /failed calling webhook.*(x509|certificate)/,
      'the API server could not verify the webhook',
    );
    // And it recovers once the webhook serves the new certificate.
    await waitFor(
      'a burst without refusals',
      async () => {
        const before = loop.outcome.refused.length;
        await loop.afterBursts(1);
        return loop.outcome.refused.length === before ? true : undefined;
      },
      { timeoutMs: HANG_MS, intervalMs: 0 },
    );
    t.pass('pods are admitted again after the swap');
  });

  await loop.stop();
  t.ok(loop.outcome.rewritten > 0, `${loop.outcome.rewritten} pods rewritten in all`);
}

const missing = toolchainMissing();
if (
  requirePrereq(t, missing === undefined, missing ?? '') &&
  requirePrereq(t, hasKustomization(), 'manifests/ has no kustomization.yaml') &&
  requirePrereq(t, existsSync(join(repoRoot, 'dist/webhook/server/cli.js')), 'the webhook is not built (npm run build)')
) {
  await t.test('certificate renewal and CA rotation while pods are created', (t) => main(t));
}
