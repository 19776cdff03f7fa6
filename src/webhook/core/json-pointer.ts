// RFC 6901 reference tokens for the annotation keys the rewrite writes.
import { ANNOTATION } from '../../common/istio-names.js';

/** RFC 6901 escaping of one reference token ("/" and "~" in annotation keys). */
export function pointerToken(key: string): string {
  let token = TOKENS.get(key);
  if (token === undefined) {
    token = key.replace(/~/g, '~0').replace(/\//g, '~1');
    // Only the webhook's own fixed keys are cached, so the cache stays a handful of entries.
    if (KNOWN_KEYS.has(key)) TOKENS.set(key, token);
  }
  return token;
}
const TOKENS = new Map<string, string>();
const KNOWN_KEYS = new Set<string>(Object.values(ANNOTATION));
