// Our plugin's entry in the node's CNI plugin list (keys fixed by the plugin's network-config contract).
import { posix as path } from 'node:path';
import type { SharedConfig } from '../common/shared-config.js';
import { PLUGIN_TYPE, type JsonObject } from './conflist.js';
import type { IptablesBackend } from './options.js';

export interface EntryOptions {
  /** Host path of the plugin's kubeconfig (the runtime executes the plugin on the host, not in our container). */
  hostKubeconfigPath: string;
  logFile: string;
  apiTimeout: string;
  /** auto (or absent) leaves iptables_backend out: the plugin detects the node's backend by default. */
  iptablesBackend?: IptablesBackend;
}

/**
 * The plugin knows debug, info, warn and error; the shared config also has trace and fatal (pino's levels). An
 * unknown level would make the plugin refuse its config, and with it every pod on the node, so map to the nearest.
 */
export function pluginLogLevel(level: SharedConfig['logLevel']): 'debug' | 'info' | 'warn' | 'error' {
  if (level === 'trace') return 'debug';
  if (level === 'fatal') return 'error';
  return level;
}

export function renderEntry(config: SharedConfig, options: EntryOptions): JsonObject {
  return {
    type: PLUGIN_TYPE,
    kubeconfig: options.hostKubeconfigPath,
    exclude_namespaces: [...config.excludeNamespaces],
    log_level: pluginLogLevel(config.logLevel),
    log_file: options.logFile,
    api_timeout: options.apiTimeout,
    ...(options.iptablesBackend && options.iptablesBackend !== 'auto'
      ? { iptables_backend: options.iptablesBackend }
      : {}),
  };
}

/**
 * The host path of a file the installer writes inside its mounted net dir: the same relative path under the host's
 * net dir. A kubeconfig outside the mounted net dir is assumed to be mounted at the same path on the host.
 */
export function hostPathOf(containerPath: string, netDir: string, hostNetDir: string): string {
  const rel = path.relative(netDir, containerPath);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return containerPath;
  return path.join(hostNetDir, rel);
}
