// Go's string functions the plugin parses annotations with, so that the webhook reads every value exactly as
// the plugin will. JavaScript's trim() differs: it strips U+FEFF, which Go keeps, and keeps U+0085, which Go strips.

/** Go's unicode.IsSpace. */
export function isGoSpace(cp: number): boolean {
  if (cp <= 0xff) return cp === 0x20 || (cp >= 0x09 && cp <= 0x0d) || cp === 0x85 || cp === 0xa0;
  return (
    cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x3000
  );
}

/** Go's unicode.IsControl: C0, DEL and C1. */
export function isGoControl(cp: number): boolean {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/** Go's strings.TrimSpace (every white space character is a single UTF-16 unit, so no surrogate care is needed). */
export function goTrimSpace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isGoSpace(s.charCodeAt(start))) start++;
  while (end > start && isGoSpace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

const encoder = new TextEncoder();

/** The length in bytes of the UTF-8 Go holds for this text (a lone surrogate becomes U+FFFD, 3 bytes, as in Go's JSON decoding). */
export function utf8Length(s: string): number {
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  return ascii ? s.length : encoder.encode(s).length;
}

/**
 * Go's strconv.ParseBool, exactly: `1 t T TRUE true True` and `0 f F FALSE false False`; anything else
 * (no trimming, no other casing) is unparseable and gives undefined.
 */
export function goParseBool(value: string): boolean | undefined {
  switch (value) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return false;
    default:
      return undefined;
  }
}
