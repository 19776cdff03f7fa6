// Which file in the net dir is the node's primary CNI config: the one the container runtime loads.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { resolveWriteTarget } from './atomic.js';
import { CniConfigError, hasCniExtension, parseCniConfig, PLUGIN_TYPE, type ParsedCniConfig } from './conflist.js';

/** Suffix of the backup of a primary config's original bytes; a dotfile with an extension the runtime ignores. */
export const BACKUP_SUFFIX = '.asm-cni-orig';

export const backupNameFor = (fileName: string): string => `.${fileName}${BACKUP_SUFFIX}`;

/** The original file name a backup stands for, or null when `fileName` is not one of our backups. */
export function originalNameOfBackup(fileName: string): string | null {
  if (!fileName.startsWith('.') || !fileName.endsWith(BACKUP_SUFFIX)) return null;
  const name = fileName.slice(1, -BACKUP_SUFFIX.length);
  return name === '' ? null : name;
}

/** The .conflist name a wrapped single-plugin file gets. */
export function wrappedName(fileName: string): string {
  const dot = fileName.lastIndexOf('.');
  return `${dot > 0 ? fileName.slice(0, dot) : fileName}.conflist`;
}

export interface PrimaryConfig {
  fileName: string;
  text: string;
  parsed: ParsedCniConfig;
}

export interface Selection {
  primary: PrimaryConfig | null;
  /** Files skipped because the runtime would refuse them (logged by the caller, never modified). */
  refused: Array<{ fileName: string; error: string }>;
}

/**
 * The lexically first valid .conf/.conflist/.json in `dir` (byte order, as the runtime sorts), or the forced file.
 * Our own files never qualify: backups and temp files by their extension, a stand-alone asm-cni config by its type.
 */
export async function selectPrimary(dir: string, forcedName?: string): Promise<Selection> {
  const refused: Selection['refused'] = [];
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { primary: null, refused };
    throw err;
  }
  const candidates = forcedName
    ? // a forced .conf we wrapped lives on as .conflist; the .conf sorts first, so a rewrite of it is seen
      names.filter((n) => n === forcedName || n === wrappedName(forcedName)).sort()
    : names.filter((n) => hasCniExtension(n)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const fileName of candidates) {
    let text: string;
    try {
      text = await fs.readFile(path.join(dir, fileName), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EISDIR') continue;
      // Renamed away under us: skip. A link whose target this container cannot see is what the runtime loads on the
      // host, so no later file may be taken for the primary: resolveWriteTarget throws, naming link and target.
      if (code !== 'ENOENT') throw err;
      await resolveWriteTarget(path.join(dir, fileName));
      continue;
    }
    try {
      const parsed = parseCniConfig(text, fileName);
      if (parsed.kind === 'single' && parsed.value.type === PLUGIN_TYPE) continue;
      return { primary: { fileName, text, parsed }, refused };
    } catch (err) {
      if (!(err instanceof CniConfigError)) throw err;
      refused.push({ fileName, error: err.message });
    }
  }
  return { primary: null, refused };
}
