import t from 'tap';
import { CoreV1Api } from '@kubernetes/client-node';
import { installerKubeConfig } from '../../../src/installer/kube.js';
import { podApiFrom, RepairController, repairVerdict, validationFailed } from '../../../src/installer/repair.js';
import { createMetrics } from '../../../src/installer/metrics.js';
import { startFakeApi, pod } from './fake-api.js';
import { memoryLogger, tempDir } from './helpers.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';

const failedNow = { state: { terminated: { exitCode: 126, reason: 'Error' } } };
const crashLoop = { state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 126 } } };
const passed = { state: { terminated: { exitCode: 0, reason: 'Completed' } }, ready: true };

t.test('validationFailed / repairVerdict', async (t) => {
  t.equal(validationFailed(pod('a', 'n', failedNow)), true, 'terminated non-zero');
  t.equal(validationFailed(pod('a', 'n', crashLoop)), true, 'crash loop after a failure');
  t.equal(validationFailed(pod('a', 'n', passed)), false, 'completed');
  t.equal(validationFailed(pod('a', 'n', { state: { running: {} } })), false, 'first run in progress');
  t.equal(
    validationFailed(pod('a', 'n', { ...passed, lastState: { terminated: { exitCode: 1 } } })),
    false,
    'failed once, then passed',
  );
  t.equal(validationFailed(pod('a', 'n', null)), false, 'no istio-validation');
  t.equal(repairVerdict(pod('a', 'n', failedNow)), 'repair');
  t.equal(repairVerdict(pod('a', 'n', failedNow, { metadata: { ownerReferences: [] } })), 'no-controller');
  t.equal(repairVerdict(pod('a', 'n', failedNow, { metadata: { deletionTimestamp: new Date() } })), 'terminating');
  t.equal(repairVerdict(pod('a', 'n', passed)), 'healthy');
});

t.test('repair against a fake API through @kubernetes/client-node', async (t) => {
  const api = await startFakeApi();
  t.teardown(() => api.close());
  const saDir = tempDir(t);
  await fs.writeFile(path.join(saDir, 'token'), 'installer-token');
  const core = installerKubeConfig(api.url, saDir).makeApiClient(CoreV1Api);
  api.pods = [
    pod('broken', 'node-a', failedNow),
    pod('looping', 'node-a', crashLoop),
    pod('fine', 'node-a', passed),
    pod('bare', 'node-a', failedNow, { metadata: { ownerReferences: [] } }),
    pod('elsewhere', 'node-b', failedNow),
  ];
  const metrics = createMetrics();
  const mem = memoryLogger();
  const repair = new RepairController({
    api: podApiFrom(core),
    nodeName: 'node-a',
    log: mem.log,
    onOutcome: (outcome) => metrics.repairs.inc({ outcome }),
  });
  t.equal(await repair.runOnce(), 2);
  t.same(api.pods.map((p) => p.metadata?.name).sort(), ['bare', 'elsewhere', 'fine']);
  const list = api.requests.find((r) => r.method === 'GET')!;
  t.match(list.path, /fieldSelector=spec\.nodeName%3Dnode-a/, 'field selector on the node name');
  t.equal(list.auth, 'Bearer installer-token', "authenticates with the installer's own token");
  const del = api.requests.find((r) => r.method === 'DELETE')!;
  t.same(del.body, { preconditions: { uid: 'uid-broken' } }, 'uid precondition');
  const text = await metrics.registry.metrics();
  t.match(text, /asm_cni_installer_repaired_pods_total\{outcome="deleted"\} 2/);
  t.match(text, /asm_cni_installer_repaired_pods_total\{outcome="no-controller"\} 1/);
  t.equal(await repair.runOnce(), 0, 'second pass: the bare pod is not reported again');
  t.match(await metrics.registry.metrics(), /outcome="no-controller"\} 1/);

  // a replacement pod with the same name but a new uid is judged again; a failed delete is retried
  api.pods.push(pod('broken', 'node-a', failedNow, { metadata: { uid: 'uid-broken-2' } }));
  const flaky = new RepairController({
    api: {
      listPodsOnNode: (n) => podApiFrom(core).listPodsOnNode(n),
      deletePod: async () => {
        throw new Error('boom');
      },
    },
    nodeName: 'node-a',
    log: mem.log,
    onOutcome: (outcome) => metrics.repairs.inc({ outcome }),
  });
  t.equal(await flaky.runOnce(), 0);
  t.equal(await flaky.runOnce(), 0);
  t.match(await metrics.registry.metrics(), /outcome="failed"\} 2/, 'failure retried on the next pass');
  t.equal(await repair.runOnce(), 1, 'the replacement pod is repaired');
});

t.test('the installer client trusts the service-account CA over https', async (t) => {
  const saDir = tempDir(t);
  await fs.writeFile(path.join(saDir, 'ca.crt'), 'PEM');
  const https = installerKubeConfig('https://10.96.0.1:443', saDir).getCurrentCluster()!;
  t.equal(https.caFile, path.join(saDir, 'ca.crt'));
  t.equal(https.skipTLSVerify, false);
  const noCa = installerKubeConfig('https://10.96.0.1:443', path.join(saDir, 'none')).getCurrentCluster()!;
  t.equal(noCa.caFile, undefined, 'no CA file: system roots');
  t.equal(
    installerKubeConfig('http://127.0.0.1:8001', saDir).getCurrentCluster()!.caFile,
    undefined,
    'plain http: no CA',
  );
});
