// The shipped manifests (manifests/, kustomize) and a local overlay that points the MutatingWebhookConfiguration at the
// webhook running on loopback: clientConfig `url: https://127.0.0.1:PORT/mutate` with the dev CA as caBundle.
import { cpSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { ControlPlane } from './control-plane.js';
import { repoRoot } from './toolchain.js';

// ASM_E2E_MANIFESTS tries the suite against another manifests dir (e.g. a candidate change) without touching manifests/.
export const manifestsDir = process.env.ASM_E2E_MANIFESTS ?? join(repoRoot, 'manifests');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: any;
}

export interface MutatingWebhook {
  name: string;
  clientConfig: { url?: string; service?: unknown; caBundle?: string };
  failurePolicy?: string;
  reinvocationPolicy?: string;
  matchConditions?: Array<{ name: string; expression: string }>;
  namespaceSelector?: unknown;
  [k: string]: unknown;
}

export function hasKustomization(dir = manifestsDir): boolean {
  return ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].some((f) => existsSync(join(dir, f)));
}

/**
 * A copy of manifests/ in `dir` with the serving certificate files the default install expects in manifests/tls/
 * (an admin runs `certs/generate.sh --out manifests/tls`; here the webhook's dev certs from the same generator).
 * The repository's manifests/ is never written to.
 */
export function copyManifests(dir: string, certDir: string): string {
  const copy = join(dir, 'manifests');
  cpSync(manifestsDir, copy, { recursive: true });
  mkdirSync(join(copy, 'tls'), { recursive: true });
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) cpSync(join(certDir, f), join(copy, 'tls', f));
  // The trusted CAs (caBundle); dev certs generated before ca-bundle.crt existed have only ca.crt.
  const bundle = existsSync(join(certDir, 'ca-bundle.crt')) ? 'ca-bundle.crt' : 'ca.crt';
  cpSync(join(certDir, bundle), join(copy, 'tls', 'ca-bundle.crt'));
  return copy;
}

/** `kubectl kustomize DIR`, parsed. */
export async function render(cp: ControlPlane, dir = manifestsDir): Promise<K8sObject[]> {
  const out = await cp.kubectlOk(['kustomize', dir]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as K8sObject)
    .filter((o) => o && typeof o === 'object' && o.kind);
}

export const webhookConfigs = (objs: K8sObject[]): K8sObject[] =>
  objs.filter((o) => o.kind === 'MutatingWebhookConfiguration');

/**
 * Writes a kustomize overlay in `dir` over the shipped manifests whose every MutatingWebhookConfiguration webhook calls
 * `url` with `caPem` as its CA. Returns the overlay dir.
 */
export async function writeLocalOverlay(
  cp: ControlPlane,
  base0: string,
  dir: string,
  url: string,
  caPem: string,
): Promise<string> {
  const base = await render(cp, base0);
  const configs = webhookConfigs(base);
  if (configs.length === 0) throw new Error('manifests/ renders no MutatingWebhookConfiguration');
  mkdirSync(dir, { recursive: true });
  const caBundle = Buffer.from(caPem).toString('base64');
  const patches = configs.map((c) => {
    const ops = (c.webhooks as MutatingWebhook[]).map((_, i) => ({
      op: 'replace',
      path: `/webhooks/${i}/clientConfig`,
      value: { url, caBundle },
    }));
    return `- target:\n    kind: MutatingWebhookConfiguration\n    name: ${c.metadata.name}\n  patch: '${JSON.stringify(ops)}'\n`;
  });
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ${relative(dir, base0)}\npatches:\n${patches.join('')}`,
  );
  return dir;
}

/** `kind/namespace/name` of an object, for messages and lookups. */
export const ref = (o: K8sObject): string =>
  `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
