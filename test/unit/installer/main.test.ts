import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { main, ONCE_MAX_FAILED_PASSES } from '../../../src/installer/main.js';
import { startFakeApi, pod } from './fake-api.js';
import { requirePrereq } from '../../harness/prereq.js';
import { fakeNode, repoRoot, poll, sleep, type Node } from './helpers.js';

const CALICO = '{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"}]}\n';

async function distIsFresh(cli: string): Promise<boolean> {
  const built = await fs.stat(cli).catch(() => null);
  if (built === null) return false;
  const srcDir = path.join(repoRoot, 'src', 'installer');
  for (const name of await fs.readdir(srcDir)) {
    if ((await fs.stat(path.join(srcDir, name))).mtimeMs > built.mtimeMs) return false;
  }
  return true;
}

function sink() {
  let text = '';
  const stream = new Writable({
    write(c, _e, cb) {
      text += String(c);
      cb();
    },
  });
  return { stream, text: () => text };
}

function flags(node: Node, extra: string[] = []): string[] {
  return [
    '--net-dir',
    node.netDir,
    '--bin-dir',
    node.binDir,
    '--sa-dir',
    node.saDir,
    '--plugin-binary',
    node.options.pluginBinary,
    '--readiness-port',
    '0',
    ...extra,
  ];
}

t.test('help and usage errors', async (t) => {
  const out = sink();
  const err = sink();
  t.equal(await main(['--help'], {}, { out: out.stream, err: err.stream }), 0);
  t.match(out.text(), /usage: asm-cni-install <run\|once\|uninstall>/);
  t.equal(await main(['frobnicate'], {}, { out: out.stream, err: err.stream }), 2);
  t.match(err.text(), /unknown command "frobnicate"/);
});

t.test('once installs and exits; uninstall gives the original bytes back', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const out = sink();
  const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  t.equal(await main(['once', ...flags(node)], env, { out: out.stream, err: out.stream }), 0);
  t.match(out.text(), /"msg":"installed"/);
  const kc = parseYaml(await fs.readFile(path.join(node.netDir, 'asm-cni-kubeconfig'), 'utf8'));
  t.equal(kc.clusters[0].cluster.server, 'https://10.96.0.1:443');
  t.equal(await main(['uninstall', ...flags(node)], env, { out: out.stream, err: out.stream }), 0);
  t.same(await fs.readdir(node.netDir), ['10-calico.conflist']);
  t.equal(await fs.readFile(path.join(node.netDir, '10-calico.conflist'), 'utf8'), CALICO);
  t.same(await fs.readdir(node.binDir), []);
});

t.test('once fails clearly without an API server or with a bad config; waits for a primary config', async (t) => {
  const node = await fakeNode(t);
  const out = sink();
  t.equal(await main(['once', ...flags(node)], {}, { out: out.stream, err: out.stream }), 1);
  t.match(out.text(), /API server unknown/);
  const bad = path.join(node.confDir, 'c.yaml');
  await fs.writeFile(bad, 'nope: 1\n');
  t.equal(
    await main(
      ['once', ...flags(node, ['--config', bad, '--api-server', 'https://x:1'])],
      {},
      { out: out.stream, err: out.stream },
    ),
    1,
  );
  t.match(out.text(), /unknown key[^\n]*cannot start without a valid config/);
  // waiting: the primary config shows up while `once` waits
  const controller = new AbortController();
  const done = main(
    ['once', ...flags(node, ['--api-server', 'https://x:1', '--resync-interval', '50ms'])],
    {},
    {
      out: out.stream,
      err: out.stream,
      signal: controller.signal,
    },
  );
  await sleep(150);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  t.equal(await done, 0, 'installed once the CNI wrote its config');
  // and an abort while waiting ends it with a failure
  await fs.rm(path.join(node.netDir, '10-calico.conflist'));
  const aborted = new AbortController();
  const waiting = main(
    ['once', ...flags(node, ['--api-server', 'https://x:1', '--resync-interval', '50ms'])],
    {},
    {
      out: out.stream,
      err: out.stream,
      signal: aborted.signal,
    },
  );
  await sleep(100);
  aborted.abort();
  t.equal(await waiting, 1);
  t.equal(
    await main(['uninstall', ...flags(node, ['--config', bad])], {}, { out: out.stream, err: out.stream }),
    0,
    'uninstall works even with a broken config',
  );
});

t.test(
  'run with a plugin ServiceAccount: TokenRequest token in the kubeconfig, repair on, abort leaves all in place',
  async (t) => {
    const api = await startFakeApi();
    t.teardown(() => api.close());
    api.pods = [pod('broken', 'node-a', { state: { terminated: { exitCode: 126 } } })];
    const node = await fakeNode(t);
    await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
    const config = path.join(node.confDir, 'config.yaml');
    await fs.writeFile(config, 'logLevel: debug\n');
    const out = sink();
    const controller = new AbortController();
    t.teardown(() => controller.abort());
    const running = main(
      [
        'run',
        ...flags(node, [
          '--api-server',
          api.url,
          '--plugin-service-account',
          'asm-cni-plugin',
          '--repair-interval',
          '50ms',
          '--config',
          config,
        ]),
      ],
      { NODE_NAME: 'node-a' },
      { out: out.stream, err: out.stream, signal: controller.signal },
    );
    const kcPath = path.join(node.netDir, 'asm-cni-kubeconfig');
    t.ok(
      await poll(async () => (await fs.readFile(kcPath, 'utf8').catch(() => '')).includes('plugin-token-1')),
      'kubeconfig carries the TokenRequest token, not the installer token',
    );
    const tr = api.requests.find((r) => r.method === 'POST')!;
    t.equal(tr.path, '/api/v1/namespaces/asm-cni/serviceaccounts/asm-cni-plugin/token');
    t.equal(tr.auth, 'Bearer token-one', 'requested with the installer token');
    t.same(
      tr.body,
      {
        spec: {
          audiences: [],
          expirationSeconds: 3600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Node', name: 'node-a' },
        },
      },
      'bound to the Node of NODE_NAME',
    );
    t.ok(await poll(() => api.pods.length === 0), 'failed pod repaired');
    controller.abort();
    t.equal(await running, 0);
    t.match(out.text(), /stopped; binary, kubeconfig and config entry left in place/);
    t.ok((await fs.readFile(path.join(node.netDir, '10-calico.conflist'), 'utf8')).includes('asm-cni'));
    t.ok((await fs.stat(kcPath)).isFile());
    t.ok((await fs.stat(path.join(node.binDir, 'asm-cni'))).isFile());
  },
);

t.test('run without an API server: repair off, still serves; pre-aborted signal returns at once', async (t) => {
  const node = await fakeNode(t);
  const out = sink();
  const controller = new AbortController();
  controller.abort();
  t.equal(await main(['run', ...flags(node)], {}, { out: out.stream, err: out.stream, signal: controller.signal }), 0);
  t.match(out.text(), /pod repair off/);
});

t.test('the CLI process: SIGTERM stops `run` and leaves everything installed', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  // The built entry point (what the image runs); loading it through the test's TypeScript loader takes far longer.
  const cli = path.join(repoRoot, 'dist', 'installer', 'cli.js');
  if (!requirePrereq(t, await distIsFresh(cli), `${cli} missing or older than src/installer: run npm run build`))
    return;
  t.match((await fs.readFile(cli, 'utf8')).split('\n')[0], '#!/usr/bin/env node', 'bin has a node shebang');
  // a plain node, as in the image: without the test runner's loaders and coverage hooks inherited via NODE_OPTIONS
  const env = { ...process.env, NODE_OPTIONS: '' };
  const proc = spawn(process.execPath, [cli, 'run', ...flags(node, ['--api-server', 'https://x:1'])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  t.teardown(() => proc.kill('SIGKILL'));
  let log = '';
  proc.stdout.on('data', (c) => (log += String(c)));
  proc.stderr.on('data', (c) => (log += String(c)));
  const exit = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  t.ok(await poll(() => log.includes('"msg":"running')), `started: ${log.slice(-500)}`);
  proc.kill('SIGTERM');
  t.equal(await exit, 0, 'clean exit');
  t.ok((await fs.readFile(path.join(node.netDir, '10-calico.conflist'), 'utf8')).includes('asm-cni'), 'entry left');
  const bad = spawn(process.execPath, [cli, 'bogus'], { stdio: ['ignore', 'ignore', 'pipe'], env });
  t.equal(await new Promise((resolve) => bad.once('exit', resolve)), 2);
});

t.test('uninstall --uninstall-wait: uninstalls, then reports ready until aborted', async (t) => {
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const out = sink();
  t.equal(
    await main(['once', ...flags(node, ['--api-server', 'https://x:1'])], {}, { out: out.stream, err: out.stream }),
    0,
  );
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const controller = new AbortController();
  t.teardown(() => controller.abort());
  const waiting = main(
    ['uninstall', ...flags(node), '--readiness-port', String(port)],
    { ASM_UNINSTALL_WAIT: 'true' },
    {
      out: out.stream,
      err: out.stream,
      signal: controller.signal,
    },
  );
  t.ok(await poll(() => out.text().includes('waiting for SIGTERM')));
  t.equal(await fs.readFile(path.join(node.netDir, '10-calico.conflist'), 'utf8'), CALICO, 'restored');
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
  controller.abort();
  t.equal(await waiting, 0);
});

t.test('once ends with exit 1 and the reason on a permanent failure, after a bounded number of passes', async (t) => {
  const node = await fakeNode(t);
  const conf = '{"cniVersion":"0.3.1","name":"x","type":"bridge"}\n';
  const unrelated = '{"cniVersion":"0.3.1","name":"other","plugins":[{"type":"ptp"}]}\n';
  await fs.writeFile(path.join(node.netDir, '10-x.conf'), conf);
  await fs.writeFile(path.join(node.netDir, '10-x.conflist'), unrelated);
  const out = sink();
  let sleeps = 0;
  const code = await main(
    ['once', ...flags(node, ['--api-server', 'https://x:1'])],
    {},
    {
      out: out.stream,
      err: out.stream,
      sleep: async () => {
        sleeps++;
      },
    },
  );
  t.equal(code, 1);
  t.equal(sleeps, ONCE_MAX_FAILED_PASSES - 1, 'gives up after the bounded number of failed passes');
  t.match(out.text(), /"msg":"install failed: entry: cannot wrap 10-x.conf into 10-x.conflist[^"]*not ours/);
  t.equal(await fs.readFile(path.join(node.netDir, '10-x.conf'), 'utf8'), conf, 'both left untouched');
  t.equal(await fs.readFile(path.join(node.netDir, '10-x.conflist'), 'utf8'), unrelated);
});

t.test("once with --plugin-service-account '' uses this pod's own token and requests none", async (t) => {
  const api = await startFakeApi();
  t.teardown(() => api.close());
  const node = await fakeNode(t);
  await fs.writeFile(path.join(node.netDir, '10-calico.conflist'), CALICO);
  const out = sink();
  const code = await main(
    ['once', ...flags(node, ['--api-server', api.url, '--plugin-service-account', ''])],
    { ASM_PLUGIN_SERVICE_ACCOUNT: 'asm-cni-plugin' },
    { out: out.stream, err: out.stream },
  );
  t.equal(code, 0, out.text());
  t.same(api.requests, [], 'no TokenRequest (never serviceaccounts//token)');
  t.match(await fs.readFile(path.join(node.netDir, 'asm-cni-kubeconfig'), 'utf8'), /token: token-one/);
});
