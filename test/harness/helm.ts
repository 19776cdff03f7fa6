// The Helm chart (charts/asm-cni) and the tools that render it: helm and kustomize built by test/setup/helm.sh (or the
// e2e toolchain's kubectl), plus the normalisation under which the chart and `kubectl kustomize manifests/` must agree.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseAllDocuments, parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { run, type RunResult } from './proc.js';
import { binPath, repoRoot } from './toolchain.js';
import type { K8sObject } from './manifests.js';

export const chartDir = join(repoRoot, 'charts', 'asm-cni');
const setupScript = join(repoRoot, 'test', 'setup', 'helm.sh');

const toolPath = (flag: string): string => execFileSync('bash', [setupScript, flag], { encoding: 'utf8' }).trim();
export const helmPath = (): string => process.env.ASM_HELM ?? toolPath('--path');

/** How to run `kustomize build DIR`: the e2e toolchain's kubectl when built, else the standalone kustomize. */
export function kustomizeCommand(): { cmd: string; args: (dir: string) => string[] } | undefined {
  const kubectl = binPath('kubectl');
  if (existsSync(kubectl)) return { cmd: kubectl, args: (dir) => ['kustomize', dir] };
  const kustomize = toolPath('--kustomize-path');
  if (existsSync(kustomize)) return { cmd: kustomize, args: (dir) => ['build', dir] };
  return undefined;
}

export const helm = (
  args: string[],
  opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> =>
  run(helmPath(), args, { timeoutMs: opts.timeoutMs ?? 120_000, input: opts.input, env: opts.env });

/** The post-renderer that points the webhook configuration at a loopback URL (e2e: the webhook runs locally). */
export const urlPostRenderer = join(repoRoot, 'test', 'harness', 'helm-url-post-renderer.mjs');

/** Every object of a multi-document YAML stream, read as the API server reads it (YAML 1.1: 0440 is octal). */
export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((d) => {
      if (d.errors.length) throw new Error(`unparsable YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject;
    })
    .filter((o) => o && typeof o === 'object' && o.kind);
}

/** `helm template asm-cni charts/asm-cni -n NS ARGS`, parsed; throws with helm's message when it fails. */
export async function renderChart(args: string[] = [], namespace = 'asm-cni'): Promise<K8sObject[]> {
  const r = await helm(['template', 'asm-cni', chartDir, '--namespace', namespace, ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(' ')} failed: ${r.stderr}`);
  return parseObjects(r.stdout);
}

/**
 * A copy of manifests/ in `dir` with stand-in certificate files (the secretGenerator only reads their bytes), and
 * kustomizations for each shipped variant: `default` (manifests/), `certManager`, `uninstall`, `multus`, and `networkPolicy` and
 * `nodeAudit` when those components exist. Returns the dirs to build.
 */
export function kustomizeVariants(dir: string, manifestsDir = join(repoRoot, 'manifests')): Record<string, string> {
  const copy = join(dir, 'manifests');
  cpSync(manifestsDir, copy, { recursive: true });
  // A stand-in for every file the secretGenerator reads (certs/generate.sh writes them for an admin).
  const top = parseYaml(readFileSync(join(copy, 'kustomization.yaml'), 'utf8')) as {
    secretGenerator?: Array<{ files?: string[] }>;
  };
  for (const entry of (top.secretGenerator ?? []).flatMap((g) => g.files ?? [])) {
    const file = join(copy, entry.slice(entry.indexOf('=') + 1));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `stand-in ${entry}\n`);
  }
  // A component's own containers are outside base/'s `images:` (kustomize applies that inside base only), so an
  // overlay that adds one repeats it, as an admin's overlay must.
  const images = (parseYaml(readFileSync(join(copy, 'base', 'kustomization.yaml'), 'utf8')) as { images?: unknown[] })
    .images;
  const overlay = (name: string, component: string): string => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    writeFileSync(
      join(d, 'kustomization.yaml'),
      stringifyYaml({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        resources: [relative(d, copy)],
        components: [relative(d, join(copy, 'components', component))],
        ...(images ? { images } : {}),
      }),
    );
    return d;
  };
  const variants: Record<string, string> = {
    default: copy,
    certManager: join(copy, 'overlays', 'cert-manager'),
    uninstall: join(copy, 'overlays', 'uninstall'),
    multus: overlay('multus', 'multus'),
  };
  const optional: Record<string, string> = { networkPolicy: 'network-policy', nodeAudit: 'node-audit' };
  for (const [variant, component] of Object.entries(optional)) {
    if (existsSync(join(copy, 'components', component))) variants[variant] = overlay(variant, component);
  }
  return variants;
}

export const objectKey = (o: K8sObject): string =>
  `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

/** Labels the chart adds for Helm's bookkeeping, on object metadata only (never on selectors or pod templates). */
export const CHART_ONLY_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by'];
export const TLS_SECRET = 'asm-cni-webhook-tls';
const GENERATED = '<generated>';
const CA_OF_SECRET = `<ca.crt of Secret ${TLS_SECRET}>`;

/**
 * The comparable form of a rendered object set, keyed by kind/namespace/name. Set aside, and checked instead of
 * compared: the certificate data (generated by the chart, stand-ins for kustomize; every caBundle must be the
 * Secret's ca.crt), the chart's bookkeeping labels, the comments inside config.yaml and the NAD's JSON layout.
 * Returns the problems found while normalising (a caBundle that is not the Secret's CA).
 */
export function normalise(objects: K8sObject[]): { byKey: Map<string, K8sObject>; problems: string[] } {
  const problems: string[] = [];
  const copy = structuredClone(objects);
  const secret = copy.find((o) => o.kind === 'Secret' && o.metadata.name === TLS_SECRET);
  const ca: string | undefined = secret?.data?.['ca.crt'];
  const byKey = new Map<string, K8sObject>();
  for (const o of copy) {
    const labels = o.metadata.labels as Record<string, string> | undefined;
    if (labels) for (const l of CHART_ONLY_LABELS) delete labels[l];
    if (o === secret && o.data) for (const k of Object.keys(o.data)) o.data[k] = GENERATED;
    if (o.kind === 'ConfigMap' && typeof o.data?.['config.yaml'] === 'string') {
      o.data['config.yaml'] = parseObjects(`kind: X\n${o.data['config.yaml']}`)[0];
    }
    if (o.kind === 'NetworkAttachmentDefinition' && typeof o.spec?.config === 'string') {
      o.spec.config = JSON.parse(o.spec.config);
    }
    if (o.kind === 'MutatingWebhookConfiguration') {
      for (const w of o.webhooks ?? []) {
        const bundle = w.clientConfig?.caBundle;
        if (bundle === undefined) continue;
        if (bundle !== ca)
          problems.push(`${objectKey(o)} ${w.name}: caBundle is not the ca.crt of Secret ${TLS_SECRET}`);
        w.clientConfig.caBundle = CA_OF_SECRET;
      }
    }
    byKey.set(objectKey(o), sortKeys(o) as K8sObject);
  }
  return { byKey, problems };
}

/** A deep copy with every object's keys in sorted order, so that a failed comparison shows only real differences. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
  );
}
