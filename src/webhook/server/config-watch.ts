// The shared config in force, and its reloads: the ConfigMap file is re-read when it changes; a new file that does
// not parse or validate is refused (logged and counted) and the last good config stays in force.
import { readFileSync } from 'node:fs';
import { ConfigError, DEFAULT_CONFIG, type SharedConfig, parseConfig } from '../../common/shared-config.js';
import type { Logger } from '../../common/logging.js';
import type { WebhookMetrics } from './metrics.js';

export class ConfigFileError extends Error {
  override name = 'ConfigFileError';
}

function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new ConfigFileError(`cannot read the config file ${path}: ${why}`);
  }
}

function parseConfigFile(path: string, text: string): SharedConfig {
  try {
    return parseConfig(text);
  } catch (err) {
    /* c8 ignore next */ if (!(err instanceof ConfigError)) throw err;
    throw new ConfigFileError(`the config file ${path} is invalid: ${err.message}`);
  }
}

export interface ConfigSourceOptions {
  /** The YAML file; unset means the built-in defaults and nothing to watch. */
  path?: string;
  logger: Logger;
  metrics: WebhookMetrics;
  /** Called after every config that goes into service (including the first), e.g. to apply logLevel. */
  onApply?: (config: SharedConfig) => void;
}

const summary = (c: SharedConfig) => ({
  excludeNamespaces: c.excludeNamespaces,
  invalidAnnotations: c.invalidAnnotations,
  cniProvider: c.cniProvider,
  multusNetwork: c.multusNetwork,
  logLevel: c.logLevel,
});

export class ConfigSource {
  private config: SharedConfig;
  private text: string | undefined;
  /** The last refused text: a poll seeing it again is not a new failure. */
  private refused: string | undefined;

  /** Loads the initial config; throws a ConfigFileError naming the file when it is unreadable or invalid. */
  constructor(private readonly opts: ConfigSourceOptions) {
    if (opts.path === undefined) {
      this.config = { ...DEFAULT_CONFIG, excludeNamespaces: [...DEFAULT_CONFIG.excludeNamespaces] };
    } else {
      this.text = readConfigText(opts.path);
      this.config = parseConfigFile(opts.path, this.text);
    }
    this.opts.metrics.configReloads.inc();
    this.opts.onApply?.(this.config);
    this.opts.logger.info({ path: opts.path ?? null, config: summary(this.config) }, 'config loaded');
  }

  /** The config in force. */
  get current(): SharedConfig {
    return this.config;
  }

  get path(): string | undefined {
    return this.opts.path;
  }

  /** Re-reads the file; returns true when a changed, valid config went into service. */
  reload(): boolean {
    const path = this.opts.path;
    if (path === undefined) return false;
    let next: SharedConfig;
    let text: string | undefined;
    try {
      text = readConfigText(path);
      if (text === this.text || text === this.refused) return false; // unchanged (a spurious event or a poll)
      next = parseConfigFile(path, text);
      this.text = text;
      this.refused = undefined;
    } catch (err) {
      this.refused = text;
      this.opts.metrics.configReloadFailures.inc();
      this.opts.logger.error({ err: (err as Error).message }, 'config reload refused; keeping the last good config');
      return false;
    }
    this.config = next;
    this.opts.metrics.configReloads.inc();
    this.opts.onApply?.(next);
    this.opts.logger.info({ path, config: summary(next) }, 'config reloaded');
    return true;
  }
}
