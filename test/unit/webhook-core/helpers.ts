// Shared by the webhook-core tests: the oracle files, the vector file, and the patch cross-check.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_CONFIG, type SharedConfig } from '../../../src/config/shared-config.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const oracleRoot = process.env.ASM_ISTIO_ORACLES ?? path.resolve(repoRoot, '../shared/oracles/istio');
export const injectDirs = ['classic-1.26.8', 'native-master'].map((d) => path.join(oracleRoot, 'inject', d));
export const oraclesPresent = (): boolean => injectDirs.every((d) => existsSync(d));

export function config(overrides: Partial<SharedConfig> = {}): SharedConfig {
  return { ...DEFAULT_CONFIG, excludeNamespaces: [...DEFAULT_CONFIG.excludeNamespaces], ...overrides };
}

/** All non-empty YAML documents of a file. */
export function yamlDocs(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as unknown)
    .filter((d) => d !== null && d !== undefined);
}

export function files(dir: string): string[] {
  return readdirSync(dir).sort();
}

export const clone = <T>(v: T): T => structuredClone(v);

/** Applies ops with fast-json-patch (validation on) to a copy of doc and returns the result. */
export function applyOps<T>(doc: T, ops: Operation[]): T {
  return jsonpatch.applyPatch(clone(doc), ops, true, true).newDocument as T;
}

/**
 * The cross-check: compare() between the input and the rewrite, and the paths it touches. The rewrite may only touch
 * the pod's annotations and its init containers (fact 5: nothing else changes).
 */
export function touchedPaths(before: unknown, after: unknown, prefix = ''): string[] {
  return jsonpatch.compare(before as object, after as object).map((op) => op.path.slice(prefix.length));
}
export const ALLOWED_PATH = /^\/(metadata\/annotations(\/|$)|metadata$|spec\/initContainers(\/|$))/;

export { jsonpatch };

export interface SelectionCase {
  name: string;
  namespace: string;
  excludeNamespaces?: string[];
  operation?: string;
  pod: Record<string, unknown>;
  seed: { selected: boolean; reason: string };
  webhook: { decision: 'patch' | 'skip'; reason: string };
  plugin: { decision: 'redirect' | 'skip'; reason: string };
}

export function selectionCases(): SelectionCase[] {
  return (JSON.parse(readFileSync(path.join(repoRoot, 'test/vectors/selection.json'), 'utf8')) as { cases: SelectionCase[] }).cases;
}

export interface AnnotationCase {
  annotation: string;
  value: string;
  valid: boolean;
}

export function annotationCases(): AnnotationCase[] {
  return (JSON.parse(readFileSync(path.join(repoRoot, 'test/vectors/annotations.json'), 'utf8')) as { cases: AnnotationCase[] }).cases;
}
