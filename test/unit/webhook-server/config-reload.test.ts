// Config reloads while serving: a ConfigMap symlink swap and an in-place edit both apply; an invalid file keeps the
// last good config, and is logged and counted; logLevel applies live.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { admit } from '../../../src/webhook/core/admit.js';
import { ConfigFileError, ConfigSource } from '../../../src/webhook/server/config-watch.js';
import { WebhookMetrics } from '../../../src/webhook/server/metrics.js';
import { startServer } from '../../../src/webhook/server/server.js';
import { relevant, watchFiles } from '../../../src/common/file-watch.js';
import { requirePrereq } from '../../harness/prereq.js';
import {
  AtomicDir,
  eventually,
  generateCerts,
  haveOpenssl,
  httpsRequest,
  meshedPod,
  memoryLogger,
  review,
  tempDir,
} from './helpers.js';

t.test('a ConfigMap update reaches the next review; a bad one is refused and counted', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const tmp = tempDir('cfg');
  const certs = generateCerts(path.join(tmp, 'certs'));
  const cm = new AtomicDir(path.join(tmp, 'config'));
  cm.write({ 'config.yaml': 'excludeNamespaces: [kube-system]\n' });
  const log = memoryLogger();
  const running = await startServer({
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    cert: certs.cert,
    key: certs.key,
    config: cm.file('config.yaml'),
    admit,
    shutdownDelayMs: 0,
    shutdownGraceMs: 2000,
    log,
    watch: { debounceMs: 50, pollMs: 0 },
  });
  t.teardown(() => running.shutdown());
  const reviewIn = async (namespace: string) => {
    const r = await httpsRequest(running.port, {
      body: JSON.stringify(review(meshedPod(), { namespace })),
      ca: certs.ca,
    });
    return (JSON.parse(r.body) as { response: { patch?: string } }).response;
  };
  const count = async (c: { get(): Promise<{ values: Array<{ value: number }> }> }) =>
    (await c.get()).values[0]?.value ?? 0;

  t.ok((await reviewIn('team-a')).patch, 'team-a is not excluded yet');
  cm.write({ 'config.yaml': 'excludeNamespaces: [kube-system, team-a]\nlogLevel: debug\n' });
  await eventually(async () => !(await reviewIn('team-a')).patch);
  t.equal(await count(running.metrics.configReloads), 2);
  t.equal(log.logger.level, 'debug', 'logLevel applied live');
  t.same(running.config.current.excludeNamespaces, ['kube-system', 'team-a']);

  cm.write({ 'config.yaml': 'excludeNamespaces: [kube-system]\ncniProvider: calico\n' });
  await eventually(async () => (await count(running.metrics.configReloadFailures)) === 1);
  t.notOk((await reviewIn('team-a')).patch, 'the last good config is still in force');
  t.ok(
    log.lines.some(
      (l) => l.level === 'error' && /cniProvider/.test(String(l.err)) && /config\.yaml/.test(String(l.err)),
    ),
    'logged naming the file and key',
  );

  cm.write({ 'config.yaml': 'logLevel: warn\n' });
  await eventually(async () => (await count(running.metrics.configReloads)) === 3);
  t.equal(log.logger.level, 'warn');
  t.ok((await reviewIn('team-a')).patch, 'defaults again: team-a selected');
  const metrics = await httpsRequest(running.port, { method: 'GET', path: '/readyz', ca: certs.ca });
  t.equal(metrics.status, 200, 'still ready throughout');
});

t.test('ConfigSource: plain files, in-place edits, missing and unreadable files', async (t) => {
  const tmp = tempDir('cfgsrc');
  const file = path.join(tmp, 'config.yaml');
  const metrics = new WebhookMetrics({ defaultMetrics: false });
  const log = memoryLogger();
  t.throws(() => new ConfigSource({ path: file, logger: log.logger, metrics }), {
    name: 'ConfigFileError',
    message: new RegExp(`${file}: no such file`),
  });
  writeFileSync(file, 'invalidAnnotations: maybe\n');
  t.throws(() => new ConfigSource({ path: file, logger: log.logger, metrics }), {
    message: /config file .*config\.yaml is invalid: .*invalidAnnotations/,
  });
  t.type(new ConfigFileError('x'), Error);

  writeFileSync(file, 'invalidAnnotations: warn\n');
  const applied: string[] = [];
  const src = new ConfigSource({
    path: file,
    logger: log.logger,
    metrics,
    onApply: (c) => applied.push(c.invalidAnnotations),
  });
  t.equal(src.current.invalidAnnotations, 'warn');
  t.equal(src.path, file);
  t.equal(src.reload(), false, 'unchanged file: no reload');
  const changes: number[] = [];
  const watch = watchFiles({
    files: [file],
    onChange: () => changes.push(src.reload() ? 1 : 0),
    debounceMs: 30,
    pollMs: 0,
  });
  t.teardown(() => watch.close());
  writeFileSync(file, 'invalidAnnotations: deny\n');
  await eventually(() => src.current.invalidAnnotations === 'deny');
  t.same(applied, ['warn', 'deny']);
  writeFileSync(file, ': : :\n- not yaml');
  await eventually(async () => ((await metrics.configReloadFailures.get()).values[0]?.value ?? 0) === 1);
  t.equal(src.reload(), false, 'the same refused text is not counted twice');
  t.equal((await metrics.configReloadFailures.get()).values[0]!.value, 1);
  const seen = changes.length;
  writeFileSync(file, readFileSync(file, 'utf8')); // touch
  await eventually(() => changes.length > seen); // the watch saw the touch and reloaded
  t.equal(src.current.invalidAnnotations, 'deny', 'still the last good config');

  const defaults = new ConfigSource({ logger: log.logger, metrics });
  t.same(defaults.current.excludeNamespaces, ['kube-system', 'istio-system']);
  t.equal(defaults.reload(), false, 'nothing to reload without a file');
});

t.test('watchFiles: polling finds changes the watch cannot see; directory errors are reported', async (t) => {
  const tmp = tempDir('watch');
  const file = path.join(tmp, 'missing-dir', 'f');
  const errors: string[] = [];
  let polls = 0;
  let closed = false;
  const w = watchFiles({
    files: [file],
    onChange: () => {
      if (closed) t.fail('onChange after close');
      polls++;
    },
    debounceMs: 5,
    pollMs: 20,
    onWatchError: (dir) => errors.push(dir),
  });
  await eventually(() => polls >= 2);
  w.close();
  closed = true;
  t.same(errors, [path.join(tmp, 'missing-dir')], 'the unwatchable directory is named');
});

t.test('watchFiles: a busy neighbour file cannot starve the reload; a burst is cut short by maxWait', async (t) => {
  const tmp = tempDir('busy');
  const file = path.join(tmp, 'config.yaml');
  const log = path.join(tmp, 'webhook.log');
  writeFileSync(file, 'a');
  let fired = 0;
  // No maxWait to speak of: were the neighbour's events counted, the debounce would never end and nothing would fire.
  const w = watchFiles({ files: [file], onChange: () => fired++, debounceMs: 150, maxWaitMs: 3_600_000, pollMs: 0 });
  t.teardown(() => w.close());
  // A log written every 20 ms in the same directory: events the watcher must ignore.
  const busy = setInterval(() => writeFileSync(log, String(Date.now()), { flag: 'a' }), 20);
  t.teardown(() => clearInterval(busy));
  t.equal(relevant(new Set(['config.yaml']), 'webhook.log'), false, "the neighbour's name does not count");
  t.equal(relevant(new Set(['config.yaml']), '..data'), true, "kubelet's atomic writer counts");
  t.equal(relevant(null, 'anything'), true, 'in a watched directory every name counts');
  writeFileSync(file, 'b');
  await eventually(() => fired >= 1);
  t.pass('the config change fired while the log kept being written');
  clearInterval(busy);

  // The watched file itself written every 20 ms with a debounce of an hour: only maxWait can fire.
  let bursts = 0;
  const w2 = watchFiles({ files: [file], onChange: () => bursts++, debounceMs: 3_600_000, maxWaitMs: 400, pollMs: 0 });
  t.teardown(() => w2.close());
  const writer = setInterval(() => writeFileSync(file, String(Date.now())), 20);
  t.teardown(() => clearInterval(writer));
  await eventually(() => bursts >= 1);
  clearInterval(writer);
  t.pass('fired by maxWait despite the continuous burst');
});
