// The product's node installer (`node dist/installer/cli.js run|once|uninstall`) as the shipped DaemonSet runs it: its
// own ServiceAccount's token in a service-account dir, minting the plugin's token (--plugin-service-account) when the
// manifests name a plugin ServiceAccount, and the API server in KUBERNETES_SERVICE_HOST/PORT.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlane } from './control-plane.js';
import type { K8sObject } from './manifests.js';
import { run, startProcess, type Managed, type RunResult } from './proc.js';
import { repoRoot } from './toolchain.js';
import { podBoundToken } from './node-identity.js';

export const installerCli = join(repoRoot, 'dist/installer/cli.js');

export interface InstallerIdentity {
  namespace: string;
  installerSA: string;
  pluginSA: string;
}

/** From the shipped installer DaemonSet: its ServiceAccount and the plugin ServiceAccount it mints tokens for. */
export function installerIdentity(rendered: K8sObject[]): InstallerIdentity | undefined {
  for (const ds of rendered.filter((o) => o.kind === 'DaemonSet')) {
    const spec = ds.spec?.template?.spec;
    for (const c of (spec?.containers ?? []) as Array<{
      env?: Array<{ name: string; value?: string }>;
      args?: string[];
    }>) {
      const fromEnv = c.env?.find((e) => e.name === 'ASM_PLUGIN_SERVICE_ACCOUNT')?.value;
      const i = c.args?.indexOf('--plugin-service-account') ?? -1;
      const fromArgs =
        i >= 0 ? c.args?.[i + 1] : c.args?.find((a) => a.startsWith('--plugin-service-account='))?.split('=')[1];
      const pluginSA = fromArgs ?? fromEnv;
      if (pluginSA && spec.serviceAccountName) {
        return { namespace: ds.metadata.namespace ?? 'default', installerSA: spec.serviceAccountName, pluginSA };
      }
    }
  }
  return undefined;
}

export interface Installer {
  /** The flags every command gets (dirs, sa dir, config, log file, identity). */
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
  /** `run` in the background (the DaemonSet's container); stop() sends SIGTERM, which leaves everything installed. */
  start(logFile: string, extraArgs?: string[]): Managed;
  /** `once` or `uninstall` to completion. */
  exec(command: 'once' | 'uninstall'): Promise<RunResult>;
}

/**
 * Prepares the installer for a node: the service-account dir holding the shipped installer ServiceAccount's token (the
 * manifests must have been applied), the shared config file, and the node's CNI dirs.
 */
export async function prepareInstaller(
  cp: ControlPlane,
  rendered: K8sObject[],
  opts: {
    dir: string;
    netDir: string;
    binDir: string;
    nodeName: string;
    config?: string;
    /** The API server port the installer (and so the plugin's kubeconfig) uses; default the control plane's. */
    apiPort?: number;
    /** Image of the installer's pod object (a real node runs it: give an image it has). */
    podImage?: string;
  },
): Promise<Installer> {
  const ids = installerIdentity(rendered);
  if (!ids) throw new Error('manifests/ name no installer DaemonSet with --plugin-service-account');
  const saDir = join(opts.dir, 'installer-sa');
  mkdirSync(saDir, { recursive: true });
  // As the kubelet mints it for the DaemonSet's pod: bound to an installer pod on this node, so the shipped admission
  // policies (manifests/base/installer-node-scope.yaml) let it delete pods and mint plugin tokens for this node.
  await cp.namespace('', { name: ids.namespace }); // its kube-root-ca.crt (the installer pod mounts its token)
  const token = await podBoundToken(cp, {
    namespace: ids.namespace,
    serviceAccount: ids.installerSA,
    node: opts.nodeName,
    pod: `asm-cni-installer-${opts.nodeName}`.slice(0, 63),
    image: opts.podImage,
    hostNetwork: true,
  });
  writeFileSync(join(saDir, 'token'), token);
  writeFileSync(join(saDir, 'ca.crt'), cp.caPem);
  writeFileSync(join(saDir, 'namespace'), ids.namespace);
  const config = join(opts.dir, 'asm-cni-config.yaml');
  writeFileSync(config, opts.config ?? 'excludeNamespaces: [kube-system, istio-system]\n');
  const args = [
    '--net-dir',
    opts.netDir,
    '--host-net-dir',
    opts.netDir,
    '--bin-dir',
    opts.binDir,
    '--sa-dir',
    saDir,
    '--config',
    config,
    '--readiness-port',
    '0',
    '--plugin-log-file',
    join(opts.dir, 'asm-cni-plugin.log'),
    '--plugin-service-account',
    ids.pluginSA,
    '--namespace',
    ids.namespace,
    '--node-name',
    opts.nodeName,
  ];
  const env = {
    ...process.env,
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(opts.apiPort ?? cp.port),
  };
  return {
    args,
    env,
    start: (logFile, extraArgs = []) =>
      startProcess('asm-cni installer (run)', 'node', [installerCli, 'run', ...args, ...extraArgs], { logFile, env }),
    exec: (command) => run('node', [installerCli, command, ...args], { env, timeoutMs: 120_000 }),
  };
}
