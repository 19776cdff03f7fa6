// Validation of the traffic annotations the CNI plugin reads, with the plugin's own rules (cni/internal/rules), so that
// the webhook denies exactly what the plugin would refuse: no pod reaches a node with a value the plugin refuses, and
// no pod Istio runs is denied for a value the plugin takes. The rules are written as shared vectors in
// test/vectors/annotations.json, read by the Go tests too, and test/unit/webhook-core/differential.test.ts feeds
// generated values to both.
import { ANNOTATION } from '../../common/istio-names.js';
import { quote } from './json.js';
import { goTrimSpace, isGoControl, isGoSpace, utf8Length } from './go-strings.js';

/** A rule returns undefined for a valid value, else a short reason. */
type Rule = (value: string) => string | undefined;

export interface AnnotationProblem {
  annotation: string;
  value: string;
  detail: string;
  /** Where the value came from when it was not the pod's annotation, e.g. "istio-init argument -b". */
  source?: string;
}

export function problemMessage(p: AnnotationProblem): string {
  const from = p.source === undefined ? '' : ` (from ${p.source})`;
  return `annotation ${p.annotation}=${quote(p.value)}${from} is invalid: ${p.detail}`;
}

// --- IP prefixes, with the grammar of Go's netip.ParsePrefix (what the Go plugin parses with).

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Dotted-quad IPv4 between [start, end): four decimal fields, 0-255, no leading zeros. */
function isIPv4(s: string, start: number, end: number): boolean {
  let fields = 0;
  let val = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (isDigit(c)) {
      if (digits === 1 && val === 0) return false; // leading zero
      val = val * 10 + (c - 48);
      digits++;
      if (val > 255) return false;
    } else if (c === 46 /* . */) {
      if (digits === 0 || i === end - 1) return false;
      fields++;
      if (fields > 3) return false;
      val = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return fields === 3 && digits > 0;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** IPv6 without a zone: hex groups of 1-4 digits, one "::" that stands for at least one group, optional IPv4 tail. */
function isIPv6(s: string): boolean {
  let i = 0;
  let bytes = 0;
  let ellipsis = false;
  if (s.startsWith('::')) {
    ellipsis = true;
    i = 2;
    if (i === s.length) return true;
  }
  while (bytes < 16) {
    const groupStart = i;
    let acc = 0;
    while (i < s.length) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      acc = acc * 16 + h;
      if (i - groupStart > 3) return false;
      i++;
    }
    if (i === groupStart) return false;
    if (i < s.length && s.charCodeAt(i) === 46 /* . */) {
      // Embedded IPv4: must be the last 32 bits.
      if ((!ellipsis && bytes !== 12) || bytes + 4 > 16) return false;
      if (!isIPv4(s, groupStart, s.length)) return false;
      bytes += 4;
      i = s.length;
      break;
    }
    bytes += 2;
    if (i === s.length) break;
    if (s.charCodeAt(i) !== 58 /* : */ || i === s.length - 1) return false;
    i++;
    if (s.charCodeAt(i) === 58) {
      if (ellipsis) return false;
      ellipsis = true;
      i++;
      if (i === s.length) break;
    }
  }
  if (i !== s.length) return false;
  return bytes < 16 ? ellipsis : !ellipsis;
}

/** Go's netip.ParsePrefix: ADDRESS/BITS, no zone, no spaces, BITS decimal without sign or leading zero. */
export function isValidPrefix(s: string): boolean {
  const slash = s.lastIndexOf('/');
  if (slash < 0) return false;
  const addr = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (bits.length === 0 || bits.length > 3) return false;
  for (let i = 0; i < bits.length; i++) if (!isDigit(bits.charCodeAt(i))) return false;
  if (bits.length > 1 && bits[0] === '0') return false;
  const n = Number(bits);
  let v4 = false;
  for (let i = 0; i < addr.length; i++) {
    const c = addr.charCodeAt(i);
    if (c === 46) {
      v4 = true;
      break;
    }
    if (c === 58 || c === 37 /* % */) break;
  }
  if (v4) return isIPv4(addr, 0, addr.length) && n <= 32;
  return !addr.includes('%') && isIPv6(addr) && n <= 128;
}

/** A comma-separated list of prefixes; the empty string is an empty list. Entries are not trimmed (as in Istio). */
function cidrList(value: string): string | undefined {
  if (value.length === 0) return undefined;
  for (const entry of value.split(',')) {
    if (!isValidPrefix(entry)) return `${quote(entry)} is not an IP prefix such as 10.0.0.0/8 or 2001:db8::/32`;
  }
  return undefined;
}

// --- ports, as the plugin (and Istio's plugin) parses them: Go's TrimSpace on the value and each entry,
// decimal digits read as 0-65535 (leading zeros allowed; the plugin writes them back without).

function isPort(entry: string): boolean {
  if (entry.length === 0) return false;
  let n = 0;
  for (let i = 0; i < entry.length; i++) {
    const c = entry.charCodeAt(i);
    if (!isDigit(c)) return false;
    n = n * 10 + (c - 48);
    if (n > 65535) return false;
  }
  return true;
}

function portList(value: string): string | undefined {
  const trimmed = goTrimSpace(value);
  if (trimmed.length === 0) return undefined;
  for (const raw of trimmed.split(',')) {
    const entry = goTrimSpace(raw);
    if (!isPort(entry)) return `${quote(entry)} is not a port (0-65535)`;
  }
  return undefined;
}

// --- network interface names: what iptables -i takes as written and iptables-save prints back as one word
// (the plugin's validInterfaceName); empty entries are dropped, as Istio's rule engine drops them.

const MAX_INTERFACE_BYTES = 15;
function interfaceList(value: string): string | undefined {
  const trimmed = goTrimSpace(value);
  if (trimmed.length === 0) return undefined;
  for (const raw of trimmed.split(',')) {
    const name = goTrimSpace(raw);
    if (name.length === 0) continue;
    if (utf8Length(name) > MAX_INTERFACE_BYTES) {
      return `interface name ${quote(name)} is longer than ${MAX_INTERFACE_BYTES} bytes`;
    }
    if (name === '+') return 'interface name "+" alone matches every interface';
    for (const ch of name) {
      const cp = ch.codePointAt(0)!;
      if (isGoSpace(cp) || isGoControl(cp) || cp === 0x22) {
        return `interface name ${quote(name)} contains white space, a control character or '"'`;
      }
    }
  }
  return undefined;
}

const orWildcard =
  (rule: Rule): Rule =>
  (value) =>
    value === '*' ? undefined : rule(value);

const MODES = new Set(['REDIRECT', 'TPROXY', 'NONE']);
const interception: Rule = (value) =>
  MODES.has(value) ? undefined : 'interception mode must be REDIRECT, TPROXY or NONE';

/** Annotation → rule. Where `*` is allowed is Istio's choice; includeOutboundPorts takes no `*` (iptables needs ports). */
export const RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  [ANNOTATION.interceptionMode, interception],
  [ANNOTATION.includeOutboundIPRanges, orWildcard(cidrList)],
  [ANNOTATION.excludeOutboundIPRanges, cidrList],
  [ANNOTATION.includeInboundPorts, orWildcard(portList)],
  [ANNOTATION.excludeInboundPorts, portList],
  [ANNOTATION.includeOutboundPorts, portList],
  [ANNOTATION.excludeOutboundPorts, portList],
  [ANNOTATION.kubevirtInterfaces, interfaceList],
  [ANNOTATION.rerouteVirtualInterfaces, interfaceList],
  [ANNOTATION.excludeInterfaces, interfaceList],
]);

/** Validates one value; annotations without a rule are always valid. Returns the reason when invalid. */
export function checkAnnotation(annotation: string, value: string): string | undefined {
  const rule = RULES.get(annotation);
  return rule === undefined ? undefined : rule(value);
}

/**
 * Validates the traffic annotations of a pod. `overrides` are the values the rewrite will write (from istio-init's
 * args), which replace the pod's own: the final values are what the plugin will read.
 */
export function validateTraffic(
  annotations: Record<string, unknown> | undefined,
  overrides: ReadonlyArray<{ annotation: string; value: string; source: string }> = [],
): AnnotationProblem[] {
  const problems: AnnotationProblem[] = [];
  for (const [annotation, rule] of RULES) {
    const override = overrides.find((o) => o.annotation === annotation);
    if (override !== undefined) {
      const detail = rule(override.value);
      if (detail !== undefined) problems.push({ annotation, value: override.value, detail, source: override.source });
      continue;
    }
    const value = annotations?.[annotation];
    if (value === undefined) continue;
    // The plugin reads the deprecated kubevirtInterfaces only without istio.io/reroute-virtual-interfaces.
    if (
      annotation === ANNOTATION.kubevirtInterfaces &&
      annotations?.[ANNOTATION.rerouteVirtualInterfaces] !== undefined
    )
      continue;
    if (typeof value !== 'string') {
      problems.push({ annotation, value: JSON.stringify(value), detail: 'annotation values must be strings' });
      continue;
    }
    const detail = rule(value);
    if (detail !== undefined) problems.push({ annotation, value, detail });
  }
  return problems;
}
