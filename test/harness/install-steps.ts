// The install as docs/install.md writes it, made runnable: the marked blocks of the docs (doc-blocks.ts) for the
// kustomize path (the component with the image and the nodes' CNI paths, the install and uninstall overlays, the
// install and uninstall commands) and for the Helm path (the values file, `helm install`, the documented uninstall),
// with only the example image and paths replaced by the test node's. A doc change that breaks the install breaks
// whatever runs these steps. The files go into a work dir holding a copy of the repository's manifests/ and certs/
// (the documented certs/generate.sh writes into manifests/tls); the scripts run there with bash.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { markedBlock } from './doc-blocks.js';
import { helm, kustomizeCommand, parseObjects } from './helm.js';
import type { K8sObject } from './manifests.js';
import { run, runOk, type RunResult } from './proc.js';
import { repoRoot } from './toolchain.js';

/** What the install is pointed at: the image and the node's CNI conf dir, bin dir and the plugin's log file. */
export interface Site {
  /** A full reference with a tag, e.g. `asm-cni.test/asm-cni:dev`. */
  image: string;
  netDir: string;
  binDir: string;
  pluginLogFile: string;
}

/** The example values the docs' blocks show, each replaced by the Site's. */
export const DOC_EXAMPLE = {
  imageRepository: 'registry.example.com/asm-cni',
  imageTag: '0.1.0',
  netDir: '/var/lib/rancher/k3s/agent/etc/cni/net.d',
  binDir: '/var/lib/rancher/k3s/data/current/bin',
  pluginLogFile: '/var/log/asm-cni.log',
  repo: '<repo>',
} as const;

/** `REPO:TAG` split at the tag (a registry port's colon comes before the last slash). */
export function splitImage(image: string): { repository: string; tag: string } {
  const at = image.lastIndexOf(':');
  if (at < 0 || at < image.lastIndexOf('/')) throw new Error(`image ${image} has no tag`);
  return { repository: image.slice(0, at), tag: image.slice(at + 1) };
}

/**
 * `block` with each example value in `values` replaced; every one of `required` must occur (a doc that no longer shows
 * it would otherwise silently install the example).
 */
export function fill(name: string, block: string, values: Record<string, string>, required: string[]): string {
  let out = block;
  for (const example of required)
    if (!out.includes(example)) throw new Error(`the docs' block test:${name} no longer shows ${example}`);
  // Longest first, so that a value containing another (a path under a path) is replaced whole.
  for (const example of Object.keys(values).sort((a, b) => b.length - a.length))
    out = out.split(example).join(values[example]!);
  return out;
}

/** The path a YAML block names in its first line (`# my-asm-cni/kustomization.yaml`). */
function namedPath(name: string, block: string): string {
  const m = block.match(/^# (\S+)\n/);
  if (!m) throw new Error(`the docs' block test:${name} does not start with "# PATH" naming its file`);
  return m[1]!;
}

export interface Steps {
  /** Where the scripts run. */
  cwd: string;
  /** `<repo>`: a copy of the repository's manifests/ and certs/, and charts/ linked. */
  repo: string;
  install: string;
  uninstall: string;
  /** The files written from the docs (overlays, component, values), by their documented path. */
  files: Record<string, string>;
  /** What the install and the uninstall apply, rendered (kustomize or helm template) without touching a cluster. */
  render(): Promise<Record<'install' | 'uninstall', K8sObject[]>>;
}

/**
 * The work dir: `repo/` (`<repo>` of the docs' blocks) holds a copy of manifests/ and certs/ and links charts/; the
 * repository's own manifests/ is never written to. The admin's files go beside it. Kept when it exists: steps made
 * again for the same dir (a new image, the documented upgrade) keep the certificates certs/generate.sh made.
 */
function workDir(dir: string): string {
  const repo = join(dir, 'repo');
  if (existsSync(repo)) return repo;
  mkdirSync(repo, { recursive: true });
  cpSync(join(repoRoot, 'manifests'), join(repo, 'manifests'), { recursive: true });
  cpSync(join(repoRoot, 'certs'), join(repo, 'certs'), { recursive: true });
  symlinkSync(join(repoRoot, 'charts'), join(repo, 'charts'));
  return repo;
}

/** The replacements for the docs' example values; `<repo>` as a path relative to `from` (kustomize wants that). */
const values = (site: Site, repo: string, from: string): Record<string, string> => {
  const { repository, tag } = splitImage(site.image);
  return {
    [DOC_EXAMPLE.imageRepository]: repository,
    [DOC_EXAMPLE.imageTag]: JSON.stringify(tag), // quoted: a tag like 1.0 must stay a string in YAML
    [DOC_EXAMPLE.netDir]: site.netDir,
    [DOC_EXAMPLE.binDir]: site.binDir,
    [DOC_EXAMPLE.pluginLogFile]: site.pluginLogFile,
    [DOC_EXAMPLE.repo]: relative(from, repo) || '.',
  };
};
const SITE_VALUES = [
  DOC_EXAMPLE.imageRepository,
  DOC_EXAMPLE.imageTag,
  DOC_EXAMPLE.netDir,
  DOC_EXAMPLE.binDir,
  DOC_EXAMPLE.pluginLogFile,
];

/** Writes each named YAML block, filled, to its documented path under `cwd`. */
function writeBlocks(cwd: string, repo: string, site: Site, blocks: Record<string, string[]>): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [name, required] of Object.entries(blocks)) {
    const block = markedBlock(name);
    const path = namedPath(name, block);
    const file = join(cwd, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, fill(name, block, values(site, repo, dirname(file)), required));
    files[path] = file;
  }
  return files;
}

/** The kustomize path of docs/install.md ("Your image and your nodes' CNI paths", "Uninstall"), filled for `site`. */
export function kustomizeSteps(dir: string, site: Site): Steps {
  const repo = workDir(dir);
  const files = writeBlocks(dir, repo, site, {
    'kustomize-component': SITE_VALUES,
    'kustomize-overlay': [DOC_EXAMPLE.repo],
    'kustomize-uninstall-overlay': [DOC_EXAMPLE.repo],
  });
  const install = fill('kustomize-install', markedBlock('kustomize-install'), values(site, repo, dir), [
    DOC_EXAMPLE.repo,
  ]);
  // As "Uninstall" says for an install from your own overlay: its uninstall overlay in place of the shipped one.
  const uninstall = fill(
    'kustomize-uninstall',
    markedBlock('kustomize-uninstall'),
    { 'manifests/overlays/uninstall/': 'my-asm-cni/uninstall/' },
    ['manifests/overlays/uninstall/'],
  );
  const render = async () => {
    const kustomize = kustomizeCommand();
    if (!kustomize) throw new Error('neither kubectl nor kustomize is built (bash test/setup/helm.sh)');
    // In a copy with stand-in certificates when certs/generate.sh has not run yet (it keeps files it finds).
    const copy = mkdtempSync(join(tmpdir(), 'asm-cni-render-'));
    try {
      cpSync(dir, copy, { recursive: true });
      for (const f of ['tls.crt', 'tls.key', 'ca-bundle.crt']) {
        const file = join(copy, relative(dir, repo), 'manifests', 'tls', f);
        if (!existsSync(file)) writeFileSync(file, `stand-in ${f}\n`);
      }
      const build = async (overlay: string) =>
        parseObjects(await runOk(kustomize.cmd, kustomize.args(join(copy, overlay))));
      return { install: await build('my-asm-cni'), uninstall: await build('my-asm-cni/uninstall') };
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  };
  return { cwd: dir, repo, install, uninstall, files, render };
}

/** The Helm path of docs/install.md ("Helm": the values file, the install, the uninstall), filled for `site`. */
export function helmSteps(dir: string, site: Site): Steps {
  const repo = workDir(dir);
  // The documented commands name charts/asm-cni and my-values.yaml: they run in the checkout.
  const files = writeBlocks(repo, repo, site, { 'helm-values': SITE_VALUES });
  const template = async (extra: string[]) => {
    const r = await helm([
      'template',
      'asm-cni',
      join(repo, 'charts', 'asm-cni'),
      '--namespace',
      'asm-cni',
      '-f',
      files['my-values.yaml']!,
      ...extra,
    ]);
    if (r.code !== 0) throw new Error(`helm template with the documented values failed: ${r.stderr}`);
    return parseObjects(r.stdout);
  };
  return {
    cwd: repo,
    repo,
    install: markedBlock('helm-install'),
    uninstall: markedBlock('helm-uninstall'),
    files,
    render: async () => ({ install: await template([]), uninstall: await template(['--set', 'uninstall=true']) }),
  };
}

interface Container {
  name: string;
  image?: string;
  env?: Array<{ name: string; value?: string }>;
}

/**
 * What in a rendering would not install onto the site: a hostPath of the installer other than the site's two dirs
 * (on the test machine it would reach the host's own /etc/cni or /opt/cni), ASM_HOST_NET_DIR or the plugin's log file
 * elsewhere, a container of the installer or the webhook on another image. Empty when all is as asked.
 */
export function siteProblems(objects: K8sObject[], site: Site): string[] {
  const problems: string[] = [];
  const ds = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'asm-cni-installer');
  const dep = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'asm-cni-webhook');
  if (!ds) return ['no DaemonSet asm-cni-installer'];
  const spec = ds.spec.template.spec;
  const hostPaths = ((spec.volumes ?? []) as Array<{ name: string; hostPath?: { path: string } }>).filter(
    (v) => v.hostPath,
  );
  for (const v of hostPaths)
    if (![site.netDir, site.binDir].includes(v.hostPath!.path))
      problems.push(`installer volume ${v.name}: hostPath ${v.hostPath!.path} is not a node dir asked for`);
  for (const dir of [site.netDir, site.binDir])
    if (!hostPaths.some((v) => v.hostPath!.path === dir)) problems.push(`no installer hostPath volume of ${dir}`);
  const installer = (spec.containers as Container[]).find((c) => c.name === 'installer');
  const env = (name: string) => installer?.env?.filter((e) => e.name === name).map((e) => e.value) ?? [];
  const want: Record<string, string> = { ASM_HOST_NET_DIR: site.netDir, ASM_PLUGIN_LOG_FILE: site.pluginLogFile };
  for (const [name, value] of Object.entries(want))
    if (JSON.stringify(env(name)) !== JSON.stringify([value]))
      problems.push(`installer env ${name}: ${JSON.stringify(env(name))}, not [${JSON.stringify(value)}]`);
  const containers = [
    ...(spec.containers as Container[]),
    ...((dep?.spec.template.spec.containers ?? []) as Container[]),
  ];
  for (const c of containers)
    if (c.image !== site.image) problems.push(`container ${c.name}: image ${c.image}, not ${site.image}`);
  return problems;
}

/**
 * Runs a documented script with bash (`-e`: the first failing command fails it; `-x`: the output shows each
 * command) in the steps' work dir. `env` supplies KUBECONFIG and a PATH with kubectl, kustomize and helm.
 */
export function runSteps(
  steps: Steps,
  script: 'install' | 'uninstall',
  env: NodeJS.ProcessEnv,
  timeoutMs = 900_000,
): Promise<RunResult> {
  return run('bash', ['-eux', '-o', 'pipefail', '-c', steps[script]], { cwd: steps.cwd, env, timeoutMs });
}
