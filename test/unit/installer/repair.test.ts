import t from 'tap';
import { CoreV1Api } from '@kubernetes/client-node';
import { installerKubeConfig } from '../../../src/installer/kube.js';
import {
  backoffDelay,
  defaultBackoff,
  podApiFrom,
  REASON_NO_CONTROLLER,
  REASON_REPAIR_STOPPED,
  RepairController,
  repairVerdict,
  validationFailed,
  validationPassed,
  type PodApi,
  type RepairEvent,
} from '../../../src/installer/repair.js';
import type { V1Pod } from '@kubernetes/client-node';
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
    backoff: defaultBackoff(30_000),
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
      createEvent: async () => {},
    },
    nodeName: 'node-a',
    log: mem.log,
    backoff: defaultBackoff(30_000),
    onOutcome: (outcome) => metrics.repairs.inc({ outcome }),
  });
  t.equal(await flaky.runOnce(), 0);
  t.equal(await flaky.runOnce(), 0);
  t.match(await metrics.registry.metrics(), /outcome="failed"\} 2/, 'failure retried on the next pass');
  t.equal(await repair.runOnce(), 1, 'the replacement pod of another owner is repaired');
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

/**
 * An in-memory node: a "controller" replaces each deleted pod of an owner with a new failing one (a node where the
 * plugin is in place but does not redirect). Events are kept for assertions.
 */
function churningNode(replacement: (deleted: V1Pod, n: number) => V1Pod | null) {
  let pods: V1Pod[] = [];
  const events: RepairEvent[] = [];
  const deleted: string[] = [];
  let n = 0;
  const api: PodApi = {
    listPodsOnNode: async () => pods,
    deletePod: async (_ns, name, uid) => {
      const gone = pods.find((p) => p.metadata?.uid === uid)!;
      pods = pods.filter((p) => p !== gone);
      deleted.push(name);
      const next = replacement(gone, ++n);
      if (next) pods.push(next);
    },
    createEvent: async (event) => {
      events.push(event);
    },
  };
  return { api, events, deleted, add: (p: V1Pod) => pods.push(p) };
}

const owned = (name: string, owner: string, uid: string, validation: Record<string, unknown> = failedNow): V1Pod =>
  pod(name, 'node-a', validation, {
    metadata: {
      uid,
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: owner, uid: `${owner}-uid`, controller: true },
      ],
    },
  });

t.test(
  'backoff per owner with a fake clock: spaced rounds, a cap, then stop with Events, resume on a change',
  async (t) => {
    let clock = 0;
    const node = churningNode((gone, n) => {
      const owner = gone.metadata!.ownerReferences![0]!.name;
      // api's replacement passes (deleting helped); web's fail every time (the plugin does not redirect them)
      return owned(`${owner}-r${n}`, owner, `${owner}-r${n}`, owner === 'api' ? passed : failedNow);
    });
    const metrics = createMetrics();
    const mem = memoryLogger();
    const repair = new RepairController({
      api: node.api,
      nodeName: 'node-a',
      log: mem.log,
      backoff: { baseMs: 1000, capMs: 4000, maxRounds: 5 },
      now: () => clock,
      onOutcome: (outcome) => metrics.repairs.inc({ outcome }),
    });
    const at = async (ms: number) => {
      clock = ms;
      return repair.runOnce();
    };
    node.add(owned('web-1', 'web', 'web-1'));
    node.add(owned('web-2', 'web', 'web-2'));
    node.add(owned('api-1', 'api', 'api-1'));

    t.equal(await at(0), 3, 'first round: both failing replicas of web and the api pod');
    t.equal(await at(999), 0, 'web replacements wait 1 s');
    t.equal(await at(1000), 2, 'second round after 1 s (both replacements)');
    t.equal(await at(2999), 0, 'then 2 s');
    t.equal(await at(3000), 2, 'third round');
    t.equal(await at(6999), 0, 'then 4 s');
    t.equal(await at(7000), 2, 'fourth round');
    t.equal(await at(10_999), 0, 'capped at 4 s, not 8 s');
    t.equal(await at(11_000), 2, 'fifth round');
    t.equal(backoffDelay({ baseMs: 1000, capMs: 4000, maxRounds: 5 }, 5), 4000, 'the cap holds');
    const deletedBefore = node.deleted.length;
    t.equal(await at(15_000), 0, 'after five rounds: nothing more deleted');
    t.equal(node.deleted.length, deletedBefore);

    const stopped = node.events.filter((e) => e.reason === REASON_REPAIR_STOPPED);
    const left = (await node.api.listPodsOnNode('node-a')).map((p) => `Pod/${p.metadata!.name}`);
    t.equal(left.length, 3, 'the api pod that passed and the two failing web pods are left');
    t.same(
      stopped.map((e) => `${e.regarding.kind}/${e.regarding.name}`).sort(),
      [...left.filter((p) => p.startsWith('Pod/web-')), 'ReplicaSet/web'].sort(),
      'an Event on each failing pod left in place and one on the owner',
    );
    const ownerEvent = stopped.find((e) => e.regarding.kind === 'ReplicaSet')!;
    t.match(ownerEvent.regarding, { apiVersion: 'apps/v1', uid: 'web-uid', namespace: 'shop' }, 'owner reference');
    t.match(
      ownerEvent.message,
      /node node-a.*ReplicaSet\/web 5 times.*reinstalled on the node or the installer restarts/s,
    );
    t.match(await metrics.registry.metrics(), /outcome="stopped"\} 2/, 'metric per pod left in place');
    const warn = mem.lines().filter((l) => l.level === 40 && /repair stopped/.test(String(l.msg)));
    t.equal(warn.length, 2, 'a warning log per pod');
    t.match(warn[0], { owner: 'ReplicaSet/web', rounds: 5 });

    t.equal(await at(100_000), 0, 'still stopped much later');
    t.equal(node.events.length, stopped.length, 'and nothing reported twice');

    repair.nodeChanged('plugin entry rewritten');
    t.equal(await at(100_001), 2, 'node changed: repair resumes at once');
    t.equal(await at(100_500), 0, 'with a fresh backoff');
    t.equal(await at(101_001), 2);
  },
);

t.test('backoff: a passing replacement resets its owner; the state of a vanished owner is forgotten', async (t) => {
  let clock = 0;
  let heal = false;
  const node = churningNode((gone, n) =>
    owned(`web-r${n}`, 'web', `web-r${n}`, heal ? { state: { terminated: { exitCode: 0 } } } : failedNow),
  );
  const repair = new RepairController({
    api: node.api,
    nodeName: 'node-a',
    log: memoryLogger().log,
    backoff: { baseMs: 1000, capMs: 4000, maxRounds: 2 },
    now: () => clock,
  });
  node.add(owned('web-1', 'web', 'web-1'));
  t.equal(await repair.runOnce(), 1);
  clock = 1000;
  heal = true;
  t.equal(await repair.runOnce(), 1, 'second round; its replacement passes');
  t.ok(validationPassed((await node.api.listPodsOnNode('node-a'))[0]!));
  clock = 1001;
  await repair.runOnce(); // sees the passing pod: web starts from no backoff
  node.add(owned('web-2', 'web', 'web-2'));
  t.equal(await repair.runOnce(), 1, 'a later failure is deleted at once, not refused after two rounds');

  // An owner with no failing pod for 4 caps is forgotten: its next failure starts a fresh backoff.
  heal = false;
  node.add(owned('db-1', 'db', 'db-1'));
  t.equal(await repair.runOnce(), 1, 'db round one');
  const replacement = (await node.api.listPodsOnNode('node-a')).find((p) => p.metadata!.name!.startsWith('web-r'))!;
  t.ok(replacement);
  clock = 1001 + 16_001;
  const pods = await node.api.listPodsOnNode('node-a');
  pods.splice(0, pods.length); // every pod gone (owners deleted)
  t.equal(await repair.runOnce(), 0);
  node.add(owned('db-2', 'db', 'db-2'));
  node.add(owned('db-3', 'db', 'db-3'));
  t.equal(await repair.runOnce(), 2, 'db forgotten: a fresh round, not a stop after two');
});

t.test('a bare pod failing validation gets an Event naming the cause and the fix, is never deleted', async (t) => {
  const api = await startFakeApi();
  t.teardown(() => api.close());
  const saDir = tempDir(t);
  await fs.writeFile(path.join(saDir, 'token'), 'installer-token');
  const core = installerKubeConfig(api.url, saDir).makeApiClient(CoreV1Api);
  api.pods = [pod('solo', 'node-a', crashLoop, { metadata: { ownerReferences: [] } })];
  const metrics = createMetrics();
  const mem = memoryLogger();
  const when = Date.UTC(2030, 0, 2, 3, 4, 5);
  const repair = new RepairController({
    api: podApiFrom(core),
    nodeName: 'node-a',
    log: mem.log,
    backoff: defaultBackoff(30_000),
    now: () => when,
    onOutcome: (outcome) => metrics.repairs.inc({ outcome }),
  });
  t.equal(await repair.runOnce(), 0);
  t.equal(await repair.runOnce(), 0);
  t.equal(api.pods.length, 1, 'not deleted');
  t.notOk(
    api.requests.some((r) => r.method === 'DELETE'),
    'no delete call',
  );
  t.equal(api.events.length, 1, 'one Event, not one per pass');
  const ev = api.events[0]!;
  t.match(ev, {
    metadata: { namespace: 'shop', name: /^solo\.[0-9a-f]{16}$/ },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'solo', uid: 'uid-solo' },
    reason: REASON_NO_CONTROLLER,
    type: 'Warning',
    count: 1,
    firstTimestamp: '2030-01-02T03:04:05.000Z',
    source: { component: 'asm-cni-install', host: 'node-a' },
    reportingComponent: 'asm-cni-install',
    reportingInstance: 'node-a',
  });
  t.match(ev.message, /started on node node-a before the asm-cni plugin was installed/, 'the cause');
  t.match(ev.message, /delete and recreate the pod \(kubectl delete pod -n shop solo/, 'the fix');
  const post = api.requests.find((r) => r.method === 'POST')!;
  t.equal(post.path, '/api/v1/namespaces/shop/events');
  t.match(await metrics.registry.metrics(), /outcome="no-controller"\} 1/);
});

t.test('an Event that cannot be recorded is logged and does not stop the pass', async (t) => {
  const mem = memoryLogger();
  let deleted = 0;
  const repair = new RepairController({
    api: {
      listPodsOnNode: async () => [
        pod('solo', 'node-a', failedNow, { metadata: { ownerReferences: [] } }),
        pod('rs-pod', 'node-a', failedNow),
      ],
      deletePod: async () => {
        deleted++;
      },
      createEvent: async () => {
        throw new Error('events is forbidden');
      },
    },
    nodeName: 'node-a',
    log: mem.log,
    backoff: defaultBackoff(30_000),
  });
  t.equal(await repair.runOnce(), 1, 'the other pod is still repaired');
  t.equal(deleted, 1);
  t.match(
    mem.lines().find((l) => l.msg === 'could not record Event'),
    { kind: 'Pod', name: 'solo', reason: REASON_NO_CONTROLLER, err: 'events is forbidden' },
  );
});

t.test('defaultBackoff follows the repair interval', async (t) => {
  t.same(defaultBackoff(30_000), { baseMs: 30_000, capMs: 240_000, maxRounds: 6 });
  const b = defaultBackoff(30_000);
  t.same(
    [1, 2, 3, 4, 5].map((n) => backoffDelay(b, n)),
    [30_000, 60_000, 120_000, 240_000, 240_000],
  );
});

t.test(
  'terminating pods and pods without metadata are left alone; a change with nothing stopped logs nothing',
  async (t) => {
    const mem = memoryLogger();
    let deletes = 0;
    const bare: V1Pod = { status: pod('x', 'node-a', failedNow).status };
    const repair = new RepairController({
      api: {
        listPodsOnNode: async () => [
          pod('going', 'node-a', failedNow, { metadata: { deletionTimestamp: new Date() } }),
          bare,
        ],
        deletePod: async () => {
          deletes++;
        },
        createEvent: async () => {},
      },
      nodeName: 'node-a',
      log: mem.log,
      backoff: defaultBackoff(30_000),
    });
    t.equal(await repair.runOnce(), 0);
    t.equal(deletes, 0, 'neither is deleted');
    t.match(
      mem.lines().find((l) => /no controller/.test(String(l.msg))),
      { namespace: '', name: '' },
      'a pod without metadata is reported as bare',
    );
    repair.nodeChanged('plugin binary rewritten');
    t.notOk(
      mem.lines().some((l) => /repair resumes/.test(String(l.msg))),
      'no resume line when nothing was stopped',
    );
  },
);
