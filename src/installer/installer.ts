// The node installer: keeps the plugin binary, its kubeconfig and its entry in the primary CNI config in place.
// Every step compares bytes before writing, so re-running it (on any file event, or periodically) is cheap and never
// loops on its own writes.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_CONFIG, parseConfig, type SharedConfig } from '../common/shared-config.js';
import {
  ensureDir,
  writeIfChanged,
  readIfExists,
  removeIfExists,
  removeStaleTempFiles,
  replaceContent,
} from './atomic.js';
import {
  canonicalWithoutEntry,
  CniConfigError,
  hasOurEntry,
  insertEntry,
  parseCniConfig,
  removeEntry,
  targetFileName,
} from './conflist.js';
import { hostPathOf, renderEntry } from './entry.js';
import { renderKubeconfig } from './kubeconfig.js';
import type { InstallerOptions } from './options.js';
import { backupNameFor, originalNameOfBackup, selectPrimary } from './primary.js';
import type { TokenSource } from './token.js';

/** Name of the installed plugin binary (the `type` the runtime executes). */
export const BINARY_NAME = 'asm-cni';

export interface Readiness {
  ready: boolean;
  binary: boolean;
  kubeconfig: boolean;
  entry: boolean;
  /** Why not ready, for /readyz and logs. */
  reasons: string[];
}

/** What one reconcile pass did: readiness after it, and the steps that failed in it (with their errors). */
export interface PassResult extends Readiness {
  failures: Array<{ step: string; error: string }>;
}

export interface InstallerDeps {
  options: InstallerOptions;
  log: Logger;
  /** Null when no token can be had (uninstall needs none). */
  tokens: TokenSource | null;
  /** Called whenever a file is (re)written, for metrics. */
  onWrite?: (what: 'binary' | 'kubeconfig' | 'entry' | 'backup') => void;
}

/** Temp files older than this are leftovers of a killed writer (a live racer renames its own within milliseconds). */
const STALE_TEMP_MS = 60_000;

export class Installer {
  private config: SharedConfig | null = null;
  private configText: string | null = null;
  private readonly refusedLogged = new Map<string, string>();
  private waitingLogged = false;
  private verifiedBinary: string | null = null;

  constructor(private readonly deps: InstallerDeps) {}

  get options(): InstallerOptions {
    return this.deps.options;
  }

  get sharedConfig(): SharedConfig {
    return this.config ?? DEFAULT_CONFIG;
  }

  private get binaryTarget(): string {
    return path.join(this.options.binDir, BINARY_NAME);
  }

  /**
   * (Re)reads the shared config. The first read must succeed; a later invalid edit keeps the last good config so a
   * typo in the ConfigMap never takes redirection away. Returns true when the config changed.
   */
  async loadConfig(): Promise<boolean> {
    const file = this.options.configPath;
    if (file === null) {
      const first = this.config === null;
      this.config ??= { ...DEFAULT_CONFIG, excludeNamespaces: [...DEFAULT_CONFIG.excludeNamespaces] };
      return first;
    }
    const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (this.config === null) throw new Error(`cannot read config ${file}: ${err.message}`);
      this.deps.log.error({ file, err: err.message }, 'cannot read config; keeping the last good one');
      return null;
    });
    if (text === null || text === this.configText) return false;
    try {
      this.config = parseConfig(text);
      this.configText = text;
      this.deps.log.info({ file, config: this.config }, 'config loaded');
      return true;
    } catch (err) {
      if (this.config === null) throw new Error(`${file}: ${(err as Error).message}`, { cause: err });
      this.configText = text; // log a bad edit once, not on every resync
      this.deps.log.error({ file, err: (err as Error).message }, 'invalid config; keeping the last good one');
      return false;
    }
  }

  /**
   * True when the installed binary has the source's bytes and mode 0755. A verified pair is remembered by its stat
   * (inode, size, mtime, mode), so the periodic passes and probes do not re-read megabytes while nothing changed.
   */
  async binaryInPlace(): Promise<boolean> {
    const stamp = async (file: string) => {
      const st = await fs.stat(file).catch(() => null);
      return st === null ? null : `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
    };
    const [target, source] = await Promise.all([stamp(this.binaryTarget), stamp(this.options.pluginBinary)]);
    if (target === null || source === null) return false;
    const key = `${target}|${source}`;
    if (key === this.verifiedBinary) return true;
    const [installed, wanted] = await Promise.all([
      readIfExists(this.binaryTarget),
      readIfExists(this.options.pluginBinary),
    ]);
    const ok = installed !== null && wanted !== null && installed.equals(wanted) && target.endsWith(`:${0o100755}`);
    this.verifiedBinary = ok ? key : null;
    return ok;
  }

  /** Copies the plugin binary into the bin dir unless an identical one is there. */
  async installBinary(): Promise<boolean> {
    if (await this.binaryInPlace()) return false;
    const bytes = await fs.readFile(this.options.pluginBinary).catch((err: Error) => {
      throw new Error(`cannot read plugin binary ${this.options.pluginBinary}: ${err.message}`);
    });
    await ensureDir(this.options.binDir);
    const wrote = await writeIfChanged(this.binaryTarget, bytes, 0o755);
    if (wrote) {
      this.deps.log.info({ path: this.binaryTarget }, 'plugin binary installed');
      this.deps.onWrite?.('binary');
    }
    return wrote;
  }

  /** Renders the plugin's kubeconfig with the current token; rewrites it only when it changed (token rotation). */
  async installKubeconfig(): Promise<boolean> {
    const { options } = this;
    if (options.apiServer === null) {
      throw new Error('API server unknown: KUBERNETES_SERVICE_HOST is not set and --api-server was not given');
    }
    if (this.deps.tokens === null) throw new Error('no token source for the plugin kubeconfig');
    const { token } = await this.deps.tokens.current();
    let caPem: string | null = null;
    if (!options.skipTlsVerify) {
      const caFile = path.join(options.saDir, 'ca.crt');
      caPem = await fs.readFile(caFile, 'utf8').catch((err: Error) => {
        throw new Error(`cannot read cluster CA ${caFile}: ${err.message}`);
      });
    }
    const text = renderKubeconfig({ server: options.apiServer, caPem, token });
    await ensureDir(path.dirname(options.kubeconfigPath));
    const wrote = await writeIfChanged(options.kubeconfigPath, text, 0o600);
    if (wrote) {
      this.deps.log.info({ path: options.kubeconfigPath }, 'plugin kubeconfig written');
      this.deps.onWrite?.('kubeconfig');
    }
    return wrote;
  }

  private renderedEntry() {
    const { options } = this;
    return renderEntry(this.sharedConfig, {
      hostKubeconfigPath: hostPathOf(options.kubeconfigPath, options.netDir, options.hostNetDir),
      logFile: options.pluginLogFile,
      apiTimeout: options.pluginApiTimeout,
      iptablesBackend: options.pluginIptablesBackend,
    });
  }

  private logRefused(refused: Array<{ fileName: string; error: string }>): void {
    for (const { fileName, error } of refused) {
      if (this.refusedLogged.get(fileName) === error) continue;
      this.refusedLogged.set(fileName, error);
      this.deps.log.error({ file: fileName, err: error }, 'refusing an invalid CNI config file (left untouched)');
    }
  }

  /**
   * Puts our entry last in the primary config. Returns 'installed' (in place, maybe after a write), 'waiting' (no
   * primary config yet) or 'multus' (the plugin runs as a Multus network: nothing is chained into the primary).
   */
  async installEntry(): Promise<'installed' | 'waiting' | 'multus'> {
    const { netDir, cniConfName } = this.options;
    if (this.sharedConfig.cniProvider === 'multus') {
      await this.restoreConfigs();
      return 'multus';
    }
    const { primary, refused } = await selectPrimary(netDir, cniConfName ?? undefined);
    this.logRefused(refused);
    if (primary === null) {
      if (!this.waitingLogged) {
        this.deps.log.info({ netDir, file: cniConfName }, 'waiting for a primary CNI config');
        this.waitingLogged = true;
      }
      return 'waiting';
    }
    this.waitingLogged = false;
    const { fileName, text, parsed } = primary;
    const result = insertEntry(text, fileName, this.renderedEntry());
    if (result.fileName === fileName && result.text === text) return 'installed';
    if (result.fileName !== fileName) {
      // Wrapping X.conf replaces it with X.conflist: a link would be lost (and its target's later changes with it).
      if ((await fs.lstat(path.join(netDir, fileName))).isSymbolicLink()) {
        throw new Error(
          `cannot wrap ${fileName} into ${result.fileName}: ${fileName} is a symbolic link, which wrapping would ` +
            'replace; make the link point to a .conflist, or set --cni-conf-name; left it untouched',
        );
      }
      // Never over a file of someone else's (one without our entry).
      const existing = await readIfExists(path.join(netDir, result.fileName));
      if (existing !== null && !this.hasEntry(existing.toString('utf8'), result.fileName)) {
        throw new Error(
          `cannot wrap ${fileName} into ${result.fileName}: that file exists and is not ours; left both untouched`,
        );
      }
    }
    if (!hasOurEntry(parsed)) {
      // The bytes the primary CNI wrote, for uninstall. Updated each time it rewrites its file without us.
      if (await writeIfChanged(path.join(netDir, backupNameFor(fileName)), text, 0o600)) this.deps.onWrite?.('backup');
    }
    await replaceContent(path.join(netDir, result.fileName), result.text);
    if (result.fileName !== fileName) await removeIfExists(path.join(netDir, fileName));
    this.deps.log.info({ file: result.fileName, from: fileName }, 'plugin entry written into the primary CNI config');
    this.deps.onWrite?.('entry');
    return 'installed';
  }

  /**
   * Gives back every config we changed: the original bytes from the backup when the file still holds only what we
   * did to it; otherwise (the primary CNI changed it since) just our entry is taken out, keeping the newer content.
   */
  async restoreConfigs(): Promise<void> {
    const { netDir } = this.options;
    let names: string[];
    try {
      names = await fs.readdir(netDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const handled = new Set<string>();
    for (const backupName of names) {
      const original = originalNameOfBackup(backupName);
      if (original === null) continue;
      const backupFile = path.join(netDir, backupName);
      const backup = await readIfExists(backupFile);
      if (backup === null) continue;
      const backupText = backup.toString('utf8');
      let target = original;
      try {
        target = targetFileName(original, parseCniConfig(backupText, original));
      } catch {
        // An unparsable backup cannot have been wrapped: we only back up files we could edit.
      }
      handled.add(target);
      const current = await readIfExists(path.join(netDir, target));
      if (current !== null && this.hasEntry(current.toString('utf8'), target)) {
        const originalNow = target !== original ? await readIfExists(path.join(netDir, original)) : null;
        if (originalNow !== null) {
          // The primary CNI has written its .conf again since: keep that and drop our wrapped copy.
          await removeIfExists(path.join(netDir, target));
        } else if (this.sameNetwork(current.toString('utf8'), target, backupText, original)) {
          await replaceContent(path.join(netDir, original), backup);
          if (target !== original) await removeIfExists(path.join(netDir, target));
          this.deps.log.info({ file: original }, 'primary CNI config restored to its original bytes');
        } else {
          await this.stripEntry(target, current.toString('utf8'));
        }
      }
      await removeIfExists(backupFile);
    }
    // Entries without a backup (e.g. a backup deleted by hand): take out just our entry.
    for (const name of names) {
      if (handled.has(name) || !/\.(conflist|conf|json)$/.test(name)) continue;
      const text = await readIfExists(path.join(netDir, name));
      if (text !== null && this.hasEntry(text.toString('utf8'), name))
        await this.stripEntry(name, text.toString('utf8'));
    }
  }

  private hasEntry(text: string, fileName: string): boolean {
    try {
      const parsed = parseCniConfig(text, fileName);
      return parsed.kind === 'list' && hasOurEntry(parsed);
    } catch (err) {
      if (err instanceof CniConfigError) return false;
      throw err;
    }
  }

  private sameNetwork(current: string, currentName: string, backup: string, backupName: string): boolean {
    try {
      return canonicalWithoutEntry(current, currentName) === canonicalWithoutEntry(backup, backupName);
    } catch {
      return false;
    }
  }

  private async stripEntry(fileName: string, text: string): Promise<void> {
    const stripped = removeEntry(text, fileName);
    if (stripped === null) return;
    await replaceContent(path.join(this.options.netDir, fileName), stripped);
    this.deps.log.warn({ file: fileName }, 'CNI config changed since we installed: removed only our entry');
  }

  /** Live readiness: the binary matches, the kubeconfig exists, and the primary config holds our current entry. */
  async readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    const binary = await this.binaryInPlace();
    if (!binary) reasons.push(`plugin binary missing or outdated at ${this.binaryTarget}`);
    const kubeconfig = (await readIfExists(this.options.kubeconfigPath).catch(() => null)) !== null;
    if (!kubeconfig) reasons.push(`plugin kubeconfig missing at ${this.options.kubeconfigPath}`);
    let entry = false;
    if (this.sharedConfig.cniProvider === 'multus') {
      entry = true;
    } else {
      let why = '';
      const { primary } = await selectPrimary(this.options.netDir, this.options.cniConfName ?? undefined).catch(
        (err: Error) => ((why = `: ${err.message}`), { primary: null }),
      );
      if (primary !== null) {
        const expected = insertEntry(primary.text, primary.fileName, this.renderedEntry());
        entry = expected.fileName === primary.fileName && expected.text === primary.text;
      }
      if (!entry) reasons.push(`plugin entry not in the primary CNI config in ${this.options.netDir}${why}`);
    }
    return { ready: binary && kubeconfig && entry, binary, kubeconfig, entry, reasons };
  }

  /** One full pass. Errors of one step are logged and do not stop the others. Returns readiness after the pass. */
  async reconcile(): Promise<PassResult> {
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['config', () => this.loadConfig()],
      ['temp files', () => this.cleanTemps()],
      ['binary', () => this.installBinary()],
      ['kubeconfig', () => this.installKubeconfig()],
      ['entry', () => this.installEntryWhenReady()],
    ];
    const failures: PassResult['failures'] = [];
    for (const [step, run] of steps) {
      try {
        await run();
      } catch (err) {
        if (step === 'config' && this.config === null) throw err;
        failures.push({ step, error: (err as Error).message });
        this.deps.log.error({ step, err: (err as Error).message }, 'install step failed; retrying on the next pass');
      }
    }
    return { ...(await this.readiness()), failures };
  }

  /**
   * The entry goes in only once binary and kubeconfig are in place: an entry whose plugin cannot run would fail the
   * network setup of every pod on the node, not just meshed ones. (A meshed pod started meanwhile fails its
   * istio-validation and is repaired.) An entry already in place stays, and multus mode still cleans up.
   */
  private async installEntryWhenReady(): Promise<void> {
    const kubeconfig = (await readIfExists(this.options.kubeconfigPath)) !== null;
    if (this.sharedConfig.cniProvider === 'multus' || ((await this.binaryInPlace()) && kubeconfig)) {
      await this.installEntry();
      return;
    }
    this.deps.log.warn('not adding the CNI config entry until the plugin binary and its kubeconfig are in place');
  }

  private async cleanTemps(): Promise<void> {
    for (const dir of [this.options.netDir, this.options.binDir]) {
      await removeStaleTempFiles(dir, STALE_TEMP_MS).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }

  /** Removes everything installed: config entry (original bytes back), kubeconfig, binary. */
  async uninstall(): Promise<void> {
    await this.restoreConfigs();
    if (await removeIfExists(this.options.kubeconfigPath))
      this.deps.log.info({ path: this.options.kubeconfigPath }, 'removed');
    if (await removeIfExists(this.binaryTarget)) this.deps.log.info({ path: this.binaryTarget }, 'removed');
  }
}
