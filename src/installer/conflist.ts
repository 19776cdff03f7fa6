// Pure transforms of a node's CNI network configuration: validate a file, put our plugin entry last in its
// plugin list, take it out again. Text in, text out; no I/O here.

/** The `type` of our plugin entry (the binary name the runtime executes). */
export const PLUGIN_TYPE = 'asm-cni';

export type JsonObject = Record<string, unknown>;

/** A CNI config file the runtime would load, decoded. `list` is the .conflist shape, `single` a one-plugin .conf. */
export type ParsedCniConfig = { kind: 'list'; value: JsonObject } | { kind: 'single'; value: JsonObject };

export class CniConfigError extends Error {
  override name = 'CniConfigError';
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** File extensions the container runtime's CNI loader reads from the net dir. */
export const CNI_CONFIG_EXTENSIONS: readonly string[] = ['.conf', '.conflist', '.json'];

export function hasCniExtension(fileName: string): boolean {
  return CNI_CONFIG_EXTENSIONS.some((ext) => fileName.endsWith(ext));
}

/**
 * Decodes a CNI config file and checks it the way the runtime's loader does: a list needs a string `name` and a
 * non-empty `plugins` array of objects each with a string `type`; a single config needs a string `type`.
 * Anything else (including `{}` and `[]`) is refused with an error naming the problem.
 */
export function parseCniConfig(text: string, fileName = 'config'): ParsedCniConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CniConfigError(`${fileName}: not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new CniConfigError(`${fileName}: must be a JSON object`);
  const listShaped = fileName.endsWith('.conflist') || 'plugins' in raw;
  if (listShaped) {
    if (typeof raw.name !== 'string' || raw.name === '') {
      throw new CniConfigError(`${fileName}: a plugin list needs a non-empty string "name"`);
    }
    const plugins = raw.plugins;
    if (!Array.isArray(plugins) || plugins.length === 0) {
      throw new CniConfigError(`${fileName}: "plugins" must be a non-empty array`);
    }
    plugins.forEach((p, i) => {
      if (!isObject(p) || typeof p.type !== 'string' || p.type === '') {
        throw new CniConfigError(`${fileName}: plugins[${i}] must be an object with a string "type"`);
      }
    });
    return { kind: 'list', value: raw };
  }
  if (typeof raw.type !== 'string' || raw.type === '') {
    throw new CniConfigError(`${fileName}: a network config needs a string "type"`);
  }
  return { kind: 'single', value: raw };
}

/** True when the list already has an entry of our type. */
export function hasOurEntry(config: ParsedCniConfig): boolean {
  if (config.kind === 'single') return config.value.type === PLUGIN_TYPE;
  return (config.value.plugins as JsonObject[]).some((p) => p.type === PLUGIN_TYPE);
}

/** Recursively sorted keys: the output is deterministic, so "same bytes" means "same meaning" and no write loops. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
  return out;
}

/** The canonical text we write: keys sorted, two-space indent, trailing newline (the shape Istio's goldens have). */
export function renderJson(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

/**
 * Turns a config into plugin-list form. A single .conf is wrapped into a list.
 *
 * Deliberate difference from Istio: Istio renames a wrapped network to `k8s-pod-network` and forces cniVersion 0.3.1.
 * We keep the original `name` and `cniVersion`: the runtime keys its cached results (and so DEL for pods that already
 * exist) by network name, and the plugins of the .conf were written for its cniVersion.
 */
export function toList(config: ParsedCniConfig): JsonObject {
  if (config.kind === 'list') {
    return { ...config.value, plugins: (config.value.plugins as JsonObject[]).map((p) => ({ ...p })) };
  }
  const { cniVersion, ...plugin } = config.value;
  const list: JsonObject = { name: config.value.name ?? plugin.type, plugins: [plugin] };
  if (cniVersion !== undefined) list.cniVersion = cniVersion;
  return list;
}

/** The list without any entry of our type. */
export function withoutOurEntry(list: JsonObject): JsonObject {
  return { ...list, plugins: (list.plugins as JsonObject[]).filter((p) => p.type !== PLUGIN_TYPE) };
}

/** The list with our entry as its last plugin; any existing entry of our type is replaced, so inserting twice is a no-op. */
export function withOurEntry(list: JsonObject, entry: JsonObject): JsonObject {
  const { cniVersion: _ignored, ...plugin } = entry;
  const others = withoutOurEntry(list).plugins as JsonObject[];
  return { ...list, plugins: [...others, { ...plugin, type: PLUGIN_TYPE }] };
}

/** File name the runtime will read our result from: a single-plugin .conf/.json becomes a .conflist. */
export function targetFileName(fileName: string, config: ParsedCniConfig): string {
  if (config.kind === 'list') return fileName;
  const dot = fileName.lastIndexOf('.');
  return `${dot > 0 ? fileName.slice(0, dot) : fileName}.conflist`;
}

export interface InsertResult {
  /** The file to write (may differ from the input's name when a .conf was wrapped). */
  fileName: string;
  text: string;
}

/** Inserts our entry into the text of a CNI config file. Throws CniConfigError for a file the runtime would refuse. */
export function insertEntry(text: string, fileName: string, entry: JsonObject): InsertResult {
  const parsed = parseCniConfig(text, fileName);
  if (parsed.kind === 'single' && parsed.value.type === PLUGIN_TYPE) {
    throw new CniConfigError(`${fileName}: is a stand-alone ${PLUGIN_TYPE} config, not a primary network`);
  }
  return { fileName: targetFileName(fileName, parsed), text: renderJson(withOurEntry(toList(parsed), entry)) };
}

/**
 * Removes our entry from the text of a plugin list. Returns null when there is nothing of ours in it, or when our
 * entry was its only plugin (the caller then removes the file rather than leave an empty list).
 */
export function removeEntry(text: string, fileName: string): string | null {
  const parsed = parseCniConfig(text, fileName);
  if (!hasOurEntry(parsed) || parsed.kind === 'single') return null;
  const stripped = withoutOurEntry(parsed.value);
  if ((stripped.plugins as unknown[]).length === 0) return null;
  return renderJson(stripped);
}

/** Canonical text of a config's network without our entry: equal for two files that differ only by our entry/format. */
export function canonicalWithoutEntry(text: string, fileName: string): string {
  return renderJson(withoutOurEntry(toList(parseCniConfig(text, fileName))));
}
