// The one YAML file shared by the webhook and the installer (a ConfigMap in a cluster).
// Parsing is pure: text in, a validated config or a ConfigError naming the offending key out.
import { parse as parseYaml } from 'yaml';

export type InvalidAnnotationPolicy = 'deny' | 'warn';
export type CniProvider = 'default' | 'multus';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface SharedConfig {
  /** Namespaces whose pods keep istio-init and are skipped by the plugin. */
  excludeNamespaces: string[];
  /** What the webhook does with a traffic annotation the plugin would refuse. */
  invalidAnnotations: InvalidAnnotationPolicy;
  /** `multus`: the plugin runs as a Multus network, so pods must name it in k8s.v1.cni.cncf.io/networks. */
  cniProvider: CniProvider;
  /** The NetworkAttachmentDefinition name (in `default`) pods join when cniProvider is multus. */
  multusNetwork: string;
  logLevel: LogLevel;
  /** Installer: delete pods whose istio-validation failed because the plugin was not ready yet. */
  repairPods: boolean;
}

export const DEFAULT_CONFIG: Readonly<SharedConfig> = Object.freeze({
  excludeNamespaces: ['kube-system', 'istio-system'],
  invalidAnnotations: 'deny',
  cniProvider: 'default',
  multusNetwork: 'asm-cni',
  logLevel: 'info',
  repairPods: true,
});

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
// RFC 1123 label: what Kubernetes accepts as a namespace or object name segment.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function oneOf<T extends string>(key: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new ConfigError(`config: ${key} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

function dnsLabel(key: string, value: unknown): string {
  if (typeof value !== 'string' || !DNS_LABEL.test(value)) {
    throw new ConfigError(
      `config: ${key} must be a DNS label (lowercase letters, digits, '-'), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Validates an already-decoded object; unknown keys are errors so that a typo never silently falls back to a default. */
export function validateConfig(raw: unknown): SharedConfig {
  if (raw === null || raw === undefined)
    return { ...DEFAULT_CONFIG, excludeNamespaces: [...DEFAULT_CONFIG.excludeNamespaces] };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('config: the document must be a mapping of keys to values');
  }
  const input = raw as Record<string, unknown>;
  const known = new Set(Object.keys(DEFAULT_CONFIG));
  for (const key of Object.keys(input)) {
    if (!known.has(key))
      throw new ConfigError(`config: unknown key ${JSON.stringify(key)} (known: ${[...known].join(', ')})`);
  }
  const config: SharedConfig = { ...DEFAULT_CONFIG, excludeNamespaces: [...DEFAULT_CONFIG.excludeNamespaces] };
  if (input.excludeNamespaces !== undefined) {
    if (!Array.isArray(input.excludeNamespaces)) {
      throw new ConfigError('config: excludeNamespaces must be a list of namespace names');
    }
    config.excludeNamespaces = input.excludeNamespaces.map((ns, i) => dnsLabel(`excludeNamespaces[${i}]`, ns));
  }
  if (input.invalidAnnotations !== undefined) {
    config.invalidAnnotations = oneOf('invalidAnnotations', input.invalidAnnotations, ['deny', 'warn'] as const);
  }
  if (input.cniProvider !== undefined) {
    config.cniProvider = oneOf('cniProvider', input.cniProvider, ['default', 'multus'] as const);
  }
  if (input.multusNetwork !== undefined) config.multusNetwork = dnsLabel('multusNetwork', input.multusNetwork);
  if (input.logLevel !== undefined) config.logLevel = oneOf('logLevel', input.logLevel, LOG_LEVELS);
  if (input.repairPods !== undefined) {
    if (typeof input.repairPods !== 'boolean') {
      throw new ConfigError(`config: repairPods must be true or false, got ${JSON.stringify(input.repairPods)}`);
    }
    config.repairPods = input.repairPods;
  }
  return config;
}

/** Parses the YAML text of the shared config file. An empty file means all defaults. */
export function parseConfig(text: string): SharedConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateConfig(raw);
}
