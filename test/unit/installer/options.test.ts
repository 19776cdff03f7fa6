import path from 'node:path';
import { promises as fs } from 'node:fs';
import t from 'tap';
import {
  defaultPluginBinary,
  parseCommandLine,
  parseDuration,
  UsageError,
  USAGE,
} from '../../../src/installer/options.js';
import { apiServerUrl, renderKubeconfig } from '../../../src/installer/kubeconfig.js';
import { repoRoot, tempDir } from './helpers.js';

t.test('in-cluster defaults', async (t) => {
  const { command, options } = parseCommandLine(['run'], {
    KUBERNETES_SERVICE_HOST: '10.96.0.1',
    KUBERNETES_SERVICE_PORT: '443',
  });
  t.equal(command, 'run');
  t.match(options, {
    netDir: '/host/etc/cni/net.d',
    binDir: '/host/opt/cni/bin',
    hostNetDir: '/etc/cni/net.d',
    configPath: null,
    saDir: '/var/run/secrets/kubernetes.io/serviceaccount',
    kubeconfigPath: '/host/etc/cni/net.d/asm-cni-kubeconfig',
    cniConfName: null,
    readinessPort: 8080,
    apiServer: 'https://10.96.0.1:443',
    pluginServiceAccount: null,
    tokenTtlSeconds: 3600,
    nodeName: null,
    pluginLogFile: '/var/log/asm-cni.log',
    pluginApiTimeout: '5s',
    pluginIptablesBackend: 'auto',
    skipTlsVerify: false,
    resyncMs: 5000,
    repairIntervalMs: 30000,
  });
  t.equal(options.pluginBinary, path.join(repoRoot, 'dist', 'cni', 'asm-cni'), 'the built binary of this package');
  t.equal(parseCommandLine(['once'], {}).options.apiServer, null, 'no cluster, no server');
});

t.test('flags win over environment, environment over defaults', async (t) => {
  const sa = tempDir(t);
  await fs.writeFile(path.join(sa, 'namespace'), 'from-file\n');
  const env = {
    ASM_NET_DIR: '/env/net',
    ASM_BIN_DIR: '/env/bin',
    NODE_NAME: 'node-1',
    ASM_PLUGIN_SERVICE_ACCOUNT: 'asm-cni-plugin',
    ASM_SA_DIR: sa,
    ASM_SKIP_TLS_VERIFY: 'true',
    ASM_READINESS_PORT: '',
  };
  const { options } = parseCommandLine(
    [
      'uninstall',
      '--net-dir',
      '/flag/net',
      '--cni-conf-name',
      '00-multus.conf',
      '--readiness-port',
      '9000',
      '--token-ttl',
      '2h',
      '--resync-interval',
      '500ms',
      '--api-server',
      'https://[fd00::1]:6443',
      '--config',
      '/c.yaml',
    ],
    env,
  );
  t.equal(options.netDir, '/flag/net');
  t.equal(options.kubeconfigPath, '/flag/net/asm-cni-kubeconfig', 'kubeconfig follows the net dir');
  t.equal(options.binDir, '/env/bin');
  t.equal(options.nodeName, 'node-1');
  t.equal(options.pluginServiceAccount, 'asm-cni-plugin');
  t.equal(options.namespace, 'from-file', 'namespace from the service-account dir');
  t.equal(options.cniConfName, '00-multus.conf');
  t.equal(options.readinessPort, 9000, 'empty env is unset');
  t.equal(options.tokenTtlSeconds, 7200);
  t.equal(options.resyncMs, 500);
  t.equal(options.skipTlsVerify, true);
  t.equal(options.configPath, '/c.yaml');
  t.equal(parseCommandLine(['run', '--skip-tls-verify'], {}).options.skipTlsVerify, true);
  t.equal(parseCommandLine(['run'], { POD_NAMESPACE: 'ns-env' }).options.namespace, 'ns-env');
  t.equal(parseCommandLine(['run', '--namespace', 'x'], {}).options.namespace, 'x');
  t.equal(parseCommandLine(['run', '--sa-dir', '/nonexistent'], {}).options.namespace, 'asm-cni');
});

t.test('usage errors name the problem', async (t) => {
  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [[], {}, /missing command/],
    [['install'], {}, /unknown command "install"/],
    [['run', 'extra'], {}, /unexpected arguments: extra/],
    [['run', '--nope'], {}, /nope/],
    [['run', '--readiness-port', '70000'], {}, /not a port number/],
    [['run', '--resync-interval', 'soon'], {}, /not a duration/],
    [['run', '--token-ttl', '5m'], {}, /at least 10m/],
    [['run'], { ASM_SKIP_TLS_VERIFY: 'perhaps' }, /expected true or false/],
    [
      ['run', '--plugin-iptables-backend', 'ebpf'],
      {},
      /--plugin-iptables-backend: expected auto, nft, legacy, got "ebpf"/,
    ],
  ];
  for (const [argv, env, re] of bad) t.throws(() => parseCommandLine(argv, env), re, argv.join(' '));
  t.throws(() => parseCommandLine(['bogus'], {}), UsageError);
  t.equal(parseCommandLine(['run'], { KUBERNETES_SERVICE_HOST: '10.0.0.1' }).options.apiServer, 'https://10.0.0.1:443');
  t.equal(parseCommandLine(['--help'], {}).command, 'help');
  t.equal(parseCommandLine(['help'], {}).command, 'help');
  t.match(USAGE, /--cni-conf-name VALUE {2}\[ASM_CNI_CONF_NAME\]/);
  t.equal(
    parseCommandLine(['run'], { ASM_PLUGIN_IPTABLES_BACKEND: 'legacy' }).options.pluginIptablesBackend,
    'legacy',
    'the iptables backend from the environment',
  );
  t.equal(parseDuration('x', '2'), 2000);
  t.equal(parseDuration('x', '1.5m'), 90000);
});

t.test('kubeconfig rendering', async (t) => {
  t.equal(apiServerUrl('10.96.0.1', '443'), 'https://10.96.0.1:443');
  t.equal(apiServerUrl('fd00::1', '443'), 'https://[fd00::1]:443');
  t.throws(() => apiServerUrl(undefined, '443'), /KUBERNETES_SERVICE_HOST/);
  t.throws(() => apiServerUrl('h', undefined), /KUBERNETES_SERVICE_PORT/);
  const text = renderKubeconfig({ server: 'https://a:1', caPem: 'PEM', token: 'tok' });
  t.match(text, /certificate-authority-data: UEVN\n/);
  t.match(text, /token: tok\n/);
  t.equal(renderKubeconfig({ server: 'https://a:1', caPem: 'PEM', token: 'tok' }), text, 'deterministic');
  t.equal(defaultPluginBinary('file:///nowhere/at/all.js'), path.resolve('dist', 'cni', 'asm-cni'));
});

t.test(
  "an empty flag means the default and is not overridden by the environment (issue 13: '' = own token)",
  async (t) => {
    const env = { ASM_PLUGIN_SERVICE_ACCOUNT: 'asm-cni-plugin', ASM_CNI_CONF_NAME: '00-multus.conf' };
    const { options } = parseCommandLine(['once', '--plugin-service-account', '', '--cni-conf-name='], env);
    t.equal(options.pluginServiceAccount, null, "'' means this pod's own token, never serviceaccounts//token");
    t.equal(options.cniConfName, null, 'an empty flag wins over the environment variable');
    t.equal(parseCommandLine(['once'], { ASM_PLUGIN_SERVICE_ACCOUNT: '' }).options.pluginServiceAccount, null);
    t.equal(parseCommandLine(['once'], env).options.pluginServiceAccount, 'asm-cni-plugin');
  },
);
