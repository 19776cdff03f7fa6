// The asm-cni-webhook CLI: flags and environment of `serve`, and clear errors for bad flags, missing files, bad config.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { USAGE, main, parseServeArgs } from '../../../src/webhook/server/cli.js';
import { requirePrereq } from '../../harness/prereq.js';
import { generateCerts, haveOpenssl, meshedPod, repoRoot, tempDir, tsChild } from './helpers.js';

function io(env: NodeJS.ProcessEnv = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { io: { stdin: new PassThrough(), stdout, stderr, env }, out: () => out, err: () => err };
}

t.test('serve flags: defaults, environment, flags over environment', async (t) => {
  t.same(parseServeArgs(['--cert', 'c', '--key', 'k'], {}), {
    host: '0.0.0.0',
    port: 9443,
    metricsPort: 9090,
    cert: 'c',
    key: 'k',
    shutdownDelayMs: 5000,
    shutdownGraceMs: 20000,
  });
  const env = {
    ASM_WEBHOOK_PORT: '8443',
    ASM_METRICS_PORT: '9091',
    ASM_TLS_CERT: '/e/tls.crt',
    ASM_TLS_KEY: '/e/tls.key',
    ASM_CONFIG: '/e/config.yaml',
    ASM_CLIENT_CA: '/e/ca.crt',
    ASM_WEBHOOK_HOST: '127.0.0.1',
    ASM_SHUTDOWN_DELAY: '0.5',
    ASM_SHUTDOWN_GRACE: '3',
  };
  t.same(parseServeArgs([], env), {
    host: '127.0.0.1',
    port: 8443,
    metricsPort: 9091,
    cert: '/e/tls.crt',
    key: '/e/tls.key',
    clientCa: '/e/ca.crt',
    config: '/e/config.yaml',
    shutdownDelayMs: 500,
    shutdownGraceMs: 3000,
  });
  t.match(parseServeArgs(['--port', '1', '--cert=/f/c', '--config', '/f/y', '--host', '::1'], env), {
    port: 1,
    cert: '/f/c',
    config: '/f/y',
    host: '::1',
    metricsPort: 9091,
  });
  t.match(parseServeArgs([], { ...env, ASM_CONFIG: '' }), { config: undefined }, 'an empty variable counts as unset');
  t.match(parseServeArgs([], { ...env, ASM_TLS_CA: '/e/bundle.crt' }), { ca: '/e/bundle.crt' }, 'ASM_TLS_CA');
  t.match(parseServeArgs(['--ca', '/f/ca.crt'], { ...env, ASM_TLS_CA: '/e/bundle.crt' }), { ca: '/f/ca.crt' }, '--ca');
  t.equal(parseServeArgs(['--help'], {}), 'help');
});

t.test('serve flags: errors name the flag', async (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--key', 'k'], {}, /--cert \(or ASM_TLS_CERT\) is required/],
    [['--cert', 'c'], {}, /--key \(or ASM_TLS_KEY\) is required/],
    [
      ['--cert', 'c', '--key', 'k', '--port', 'https'],
      {},
      /--port \(ASM_WEBHOOK_PORT\) must be a port number 0-65535, got "https"/,
    ],
    [
      ['--cert', 'c', '--key', 'k'],
      { ASM_METRICS_PORT: '70000' },
      /--metrics-port \(ASM_METRICS_PORT\) must be a port/,
    ],
    [['--cert', 'c', '--key', 'k', '--shutdown-delay=-1'], {}, /--shutdown-delay .* seconds >= 0, got "-1"/],
    [['--cert', 'c', '--key', 'k', '--shutdown-grace', 'soon'], {}, /--shutdown-grace/],
    [['--cert', 'c', '--key', 'k', '--tls-port', '1'], {}, /Unknown option '--tls-port'/],
    [['--cert', 'c', '--key', 'k', 'extra'], {}, /extra/],
    [['--cert'], {}, /--cert/],
  ];
  for (const [argv, env, re] of cases)
    t.throws(() => parseServeArgs(argv, env), { name: 'UsageError', message: re }, argv.join(' '));
});

t.test('main: help, unknown commands, usage errors exit 2', async (t) => {
  let c = io();
  t.equal(await main(['--help'], c.io), 0);
  t.equal(c.out(), USAGE);
  t.match(USAGE, /ASM_WEBHOOK_PORT.*9443/);
  c = io();
  t.equal(await main(['serve', '--help'], c.io), 0);
  t.match(c.out(), /--client-ca/);
  c = io();
  t.equal(await main([], c.io), 2);
  t.match(c.err(), /Usage: asm-cni-webhook/);
  c = io();
  t.equal(await main(['validate'], c.io), 2);
  t.match(c.err(), /unknown command "validate" \(expected serve or mutate\)/);
  c = io();
  t.equal(await main(['serve', '--port', 'x', '--cert', 'c', '--key', 'k'], c.io), 2);
  t.match(c.err(), /asm-cni-webhook: --port .* got "x"\nRun 'asm-cni-webhook --help' for usage\./);
});

t.test('main serve: missing or bad files are named; exit 1', async (t) => {
  if (!requirePrereq(t, haveOpenssl(), 'openssl (apt-get install openssl) to generate test certificates')) return;
  const tmp = tempDir('cli');
  const certs = generateCerts(path.join(tmp, 'certs'));
  const base = ['serve', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'];
  const missing = path.join(tmp, 'nope', 'tls.crt');
  let c = io();
  t.equal(await main([...base, '--cert', missing, '--key', certs.key], c.io), 1);
  t.equal(c.err(), `asm-cni-webhook: cannot read the TLS certificate ${missing}: no such file\n`);
  c = io();
  t.equal(await main([...base, '--cert', certs.cert, '--key', path.join(tmp, 'k')], c.io), 1);
  t.match(c.err(), `cannot read the TLS private key ${path.join(tmp, 'k')}: no such file`);
  c = io();
  t.equal(await main([...base, '--cert', certs.key, '--key', certs.key], c.io), 1);
  t.match(c.err(), /is not a PEM certificate/);
  const other = generateCerts(path.join(tmp, 'other'));
  c = io();
  t.equal(await main([...base, '--cert', certs.cert, '--key', other.key], c.io), 1);
  t.match(c.err(), /does not match the certificate/);
  c = io();
  t.equal(await main([...base, '--cert', certs.cert, '--key', certs.cert], c.io), 1);
  t.match(c.err(), /is not a PEM private key/);
  c = io();
  t.equal(await main([...base, '--cert', certs.cert, '--key', certs.key, '--client-ca', certs.key], c.io), 1);
  t.match(c.err(), /client CA bundle .* is not a PEM certificate/);
  c = io();
  t.equal(
    await main([...base, '--cert', certs.cert, '--key', certs.key, '--client-ca', path.join(tmp, 'ca')], c.io),
    1,
  );
  t.match(c.err(), /cannot read the client CA bundle/);
  c = io();
  t.equal(
    await main([...base, '--cert', certs.cert, '--key', certs.key, '--config', path.join(tmp, 'config.yaml')], c.io),
    1,
  );
  t.match(c.err(), `cannot read the config file ${path.join(tmp, 'config.yaml')}: no such file`);
  writeFileSync(path.join(tmp, 'config.yaml'), 'excludeNamespace: [a]\n');
  c = io();
  t.equal(
    await main([...base, '--cert', certs.cert, '--key', certs.key, '--config', path.join(tmp, 'config.yaml')], c.io),
    1,
  );
  t.match(c.err(), /config file .* is invalid: config: unknown key "excludeNamespace"/);
  // A port already taken.
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => blocker.close());
  const taken = String((blocker.address() as net.AddressInfo).port);
  c = io();
  t.equal(
    await main(
      [
        'serve',
        '--host',
        '127.0.0.1',
        '--port',
        taken,
        '--metrics-port',
        '0',
        '--cert',
        certs.cert,
        '--key',
        certs.key,
      ],
      c.io,
    ),
    1,
  );
  t.match(c.err(), /cannot listen: .*EADDRINUSE/);
  c = io();
  t.equal(
    await main(
      [
        'serve',
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--metrics-port',
        taken,
        '--cert',
        certs.cert,
        '--key',
        certs.key,
      ],
      c.io,
    ),
    1,
  );
  t.match(c.err(), /cannot listen: .*EADDRINUSE/, 'the metrics port too');
});

t.test('the bin runs as a script: a usage error exits 2', async (t) => {
  const cli = path.join(repoRoot, 'src/webhook/server/cli.ts');
  const { execArgv, env } = tsChild({ ...process.env, ASM_TLS_CERT: '', ASM_TLS_KEY: '' });
  const bad = spawnSync(process.execPath, [...execArgv, cli, 'serve'], { encoding: 'utf8', env });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--cert \(or ASM_TLS_CERT\) is required/);
});

t.test('mutate is dispatched to the manifest rewriter', async (t) => {
  const tmp = tempDir('mutate');
  const file = path.join(tmp, 'pod.json');
  writeFileSync(file, JSON.stringify(meshedPod()));
  let c = io();
  t.equal(await main(['mutate', '-f', file, '--namespace', 'team-a', '--output', 'json'], c.io), 0, c.err());
  const out = JSON.parse(c.out()) as { spec: { initContainers: Array<{ name: string }> } };
  t.equal(out.spec.initContainers[0]!.name, 'istio-validation');
  c = io();
  t.equal(await main(['mutate', '-f', path.join(tmp, 'missing.yaml')], c.io), 1);
  t.match(c.err(), /missing\.yaml/);
});
