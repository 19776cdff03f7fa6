// Command line and environment of `asm-cni-install`. Every flag has an environment equivalent; flags win.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { apiServerUrl, KUBECONFIG_FILE_NAME } from './kubeconfig.js';
import { UsageError } from '../common/usage-error.js';
export { UsageError };

export type Command = 'run' | 'once' | 'uninstall';

export interface InstallerOptions {
  netDir: string;
  binDir: string;
  hostNetDir: string;
  pluginBinary: string;
  configPath: string | null;
  saDir: string;
  kubeconfigPath: string;
  cniConfName: string | null;
  readinessPort: number;
  /** API server URL; null when it cannot be known (not in a cluster, no --api-server). */
  apiServer: string | null;
  pluginServiceAccount: string | null;
  namespace: string;
  tokenTtlSeconds: number;
  nodeName: string | null;
  pluginLogFile: string;
  pluginApiTimeout: string;
  /** The entry's iptables_backend; auto leaves the key out (the plugin's own default). */
  pluginIptablesBackend: IptablesBackend;
  skipTlsVerify: boolean;
  resyncMs: number;
  repairIntervalMs: number;
  /** uninstall: stay up afterwards (ready) until SIGTERM, for a DaemonSet rolled out in uninstall mode. */
  uninstallWait: boolean;
}

export const IPTABLES_BACKENDS = ['auto', 'nft', 'legacy'] as const;
export type IptablesBackend = (typeof IPTABLES_BACKENDS)[number];

interface FlagSpec {
  env: string;
  help: string;
  bool?: boolean;
}

export const FLAGS: Record<string, FlagSpec> = {
  'net-dir': { env: 'ASM_NET_DIR', help: 'CNI net dir as mounted in this container (default /host/etc/cni/net.d)' },
  'bin-dir': { env: 'ASM_BIN_DIR', help: 'CNI bin dir as mounted in this container (default /host/opt/cni/bin)' },
  'host-net-dir': {
    env: 'ASM_HOST_NET_DIR',
    help: "the net dir's path on the host, used in the entry (default /etc/cni/net.d)",
  },
  'plugin-binary': {
    env: 'ASM_PLUGIN_BINARY',
    help: 'plugin binary to install (default: dist/cni/asm-cni of this package)',
  },
  config: { env: 'ASM_CONFIG', help: 'shared YAML config file (default: built-in defaults)' },
  'sa-dir': { env: 'ASM_SA_DIR', help: 'service-account dir with token, ca.crt, namespace' },
  'kubeconfig-path': {
    env: 'ASM_KUBECONFIG_PATH',
    help: "where the plugin's kubeconfig goes (default <net-dir>/asm-cni-kubeconfig)",
  },
  'cni-conf-name': {
    env: 'ASM_CNI_CONF_NAME',
    help: 'insert into this file of the net dir instead of the primary config',
  },
  'readiness-port': {
    env: 'ASM_READINESS_PORT',
    help: 'port of /readyz, /healthz and /metrics (default 8080; 0 = off)',
  },
  'api-server': {
    env: 'ASM_API_SERVER',
    help: 'API server URL (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)',
  },
  'plugin-service-account': {
    env: 'ASM_PLUGIN_SERVICE_ACCOUNT',
    help: "ServiceAccount whose short-lived token the plugin uses (TokenRequest); empty = this pod's own token",
  },
  namespace: { env: 'ASM_NAMESPACE', help: 'namespace of the plugin ServiceAccount (default: <sa-dir>/namespace)' },
  'token-ttl': { env: 'ASM_TOKEN_TTL', help: 'lifetime requested for the plugin token (default 1h, minimum 10m)' },
  'node-name': { env: 'NODE_NAME', help: 'this node (for pod repair; repair is off without it)' },
  'plugin-log-file': {
    env: 'ASM_PLUGIN_LOG_FILE',
    help: "host path of the plugin's log file (default /var/log/asm-cni.log)",
  },
  'plugin-api-timeout': { env: 'ASM_PLUGIN_API_TIMEOUT', help: "the plugin's API call timeout (default 5s)" },
  'plugin-iptables-backend': {
    env: 'ASM_PLUGIN_IPTABLES_BACKEND',
    help: "the plugin's iptables backend: auto (the node's), nft or legacy (default auto)",
  },
  'skip-tls-verify': {
    env: 'ASM_SKIP_TLS_VERIFY',
    help: 'plugin kubeconfig without CA check (development only)',
    bool: true,
  },
  'resync-interval': { env: 'ASM_RESYNC_INTERVAL', help: 'full check interval besides file events (default 5s)' },
  'uninstall-wait': {
    env: 'ASM_UNINSTALL_WAIT',
    help: 'uninstall: then keep running (ready) until SIGTERM, so a DaemonSet can roll it out to every node',
    bool: true,
  },
  'repair-interval': {
    env: 'ASM_REPAIR_INTERVAL',
    help: 'how often pods on this node are checked for repair (default 30s)',
  },
};

export const USAGE = `usage: asm-cni-install <run|once|uninstall> [flags]
  run        install, then keep binary, kubeconfig and config entry in place until SIGTERM (which leaves them)
  once       install and exit (waits for a primary CNI config)
  uninstall  restore the primary CNI config and remove the kubeconfig and the binary (--uninstall-wait: then stay up)
flags (environment variable in brackets):
${Object.entries(FLAGS)
  .map(([name, spec]) => `  --${name}${spec.bool ? '' : ' VALUE'}  [${spec.env}]\n      ${spec.help}`)
  .join('\n')}`;

/** Parses a duration such as 500ms, 5s, 2m, 1h (a bare number is seconds). */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${flag}: not a duration: ${JSON.stringify(text)} (examples: 500ms, 5s, 2m, 1h)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--readiness-port: not a port number: ${JSON.stringify(text)}`);
  }
  return port;
}

function parseIptablesBackend(text: string): IptablesBackend {
  const backend = IPTABLES_BACKENDS.find((b) => b === text);
  if (!backend) {
    throw new UsageError(
      `--plugin-iptables-backend: expected ${IPTABLES_BACKENDS.join(', ')}, got ${JSON.stringify(text)}`,
    );
  }
  return backend;
}

function parseFlagBool(flag: string, text: string): boolean {
  if (/^(1|t|true|yes)$/i.test(text)) return true;
  if (/^(0|f|false|no)?$/i.test(text)) return false;
  throw new UsageError(`--${flag}: expected true or false, got ${JSON.stringify(text)}`);
}

/** dist/cni/asm-cni of the package this module belongs to (found by walking up to package.json). */
export function defaultPluginBinary(fromUrl: string = import.meta.url): string {
  let dir = path.dirname(fileURLToPath(fromUrl));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'cni', 'asm-cni');
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve('dist', 'cni', 'asm-cni');
    dir = parent;
  }
}

function readNamespace(saDir: string): string | null {
  try {
    const ns = readFileSync(path.join(saDir, 'namespace'), 'utf8').trim();
    return ns === '' ? null : ns;
  } catch {
    return null;
  }
}

export function parseCommandLine(
  argv: string[],
  env: NodeJS.ProcessEnv,
): { command: Command | 'help'; options: InstallerOptions } {
  let parsed;
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
      help: { type: 'boolean', short: 'h' },
    };
    for (const [name, spec] of Object.entries(FLAGS)) options[name] = { type: spec.bool ? 'boolean' : 'string' };
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  // An empty flag means the default (for --plugin-service-account: this pod's own token), as an empty variable does;
  // given on the command line it still wins over the variable.
  const get = (name: string): string | undefined => {
    const v = values[name];
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (v !== undefined) return v === '' ? undefined : v;
    const e = env[FLAGS[name]!.env];
    return e === undefined || e === '' ? undefined : e;
  };
  const [first, ...rest] = parsed.positionals;
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
  let command: Command | 'help';
  if (values.help || first === 'help') command = 'help';
  else if (first === 'run' || first === 'once' || first === 'uninstall') command = first;
  else if (first === undefined) throw new UsageError('missing command: run, once or uninstall');
  else throw new UsageError(`unknown command ${JSON.stringify(first)}: expected run, once or uninstall`);

  const netDir = get('net-dir') ?? '/host/etc/cni/net.d';
  const saDir = get('sa-dir') ?? '/var/run/secrets/kubernetes.io/serviceaccount';
  let apiServer: string | null = get('api-server') ?? null;
  if (apiServer === null && env.KUBERNETES_SERVICE_HOST) {
    apiServer = apiServerUrl(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT ?? '443');
  }
  const tokenTtlMs = parseDuration('token-ttl', get('token-ttl') ?? '1h');
  if (tokenTtlMs < 600_000) throw new UsageError('--token-ttl: the API server issues tokens of at least 10m');
  return {
    command,
    options: {
      netDir,
      binDir: get('bin-dir') ?? '/host/opt/cni/bin',
      hostNetDir: get('host-net-dir') ?? '/etc/cni/net.d',
      pluginBinary: get('plugin-binary') ?? defaultPluginBinary(),
      configPath: get('config') ?? null,
      saDir,
      kubeconfigPath: get('kubeconfig-path') ?? path.join(netDir, KUBECONFIG_FILE_NAME),
      cniConfName: get('cni-conf-name') ?? null,
      readinessPort: parsePort(get('readiness-port') ?? '8080'),
      apiServer,
      pluginServiceAccount: get('plugin-service-account') ?? null,
      namespace: get('namespace') ?? env.POD_NAMESPACE ?? readNamespace(saDir) ?? 'asm-cni',
      tokenTtlSeconds: Math.floor(tokenTtlMs / 1000),
      nodeName: get('node-name') ?? null,
      pluginLogFile: get('plugin-log-file') ?? '/var/log/asm-cni.log',
      pluginApiTimeout: get('plugin-api-timeout') ?? '5s',
      pluginIptablesBackend: parseIptablesBackend(get('plugin-iptables-backend') ?? 'auto'),
      skipTlsVerify: parseFlagBool('skip-tls-verify', get('skip-tls-verify') ?? 'false'),
      resyncMs: parseDuration('resync-interval', get('resync-interval') ?? '5s'),
      repairIntervalMs: parseDuration('repair-interval', get('repair-interval') ?? '30s'),
      uninstallWait: parseFlagBool('uninstall-wait', get('uninstall-wait') ?? 'false'),
    },
  };
}
