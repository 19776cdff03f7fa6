// Readers for decoded, untrusted JSON: every one tolerates any shape, because admission input is untrusted and
// admit() must never throw.

export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown): JsonObject | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

export function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : EMPTY;
}
const EMPTY: readonly unknown[] = Object.freeze([]);

/** A string-valued entry of a labels/annotations map; anything else reads as absent. */
export function stringEntry(map: JsonObject | undefined, key: string): string | undefined {
  if (map === undefined || !Object.prototype.hasOwnProperty.call(map, key)) return undefined;
  const v = map[key];
  return typeof v === 'string' ? v : undefined;
}

/** A value for a message: JSON-quoted, cut at 40 characters so a huge annotation cannot flood a response. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}
