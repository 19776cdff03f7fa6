// The image as the Dockerfile builds it (test/image/build.sh: BuildKit, stand-in bases): unpacked into a root
// filesystem and run with chroot, it holds and runs what the manifests start: the webhook and installer CLIs, the
// plugin at the path the installer copies from, crictl and iptables for the node audit; its default user and command
// are the ones the manifests rely on.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { isRoot, requirePrereq } from '../harness/prereq.js';
import { repoRoot } from '../harness/toolchain.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
if (!requirePrereq(t, isRoot(), 'building and chrooting into the image needs root (buildkitd runs runc)'))
  process.exit(0);

const work = mkdtempSync(join(tmpdir(), 'asm-cni-image-test-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
// ASM_IMAGE_ARCHIVE: an archive build.sh already wrote (to iterate on these checks without rebuilding).
const archive = process.env.ASM_IMAGE_ARCHIVE || join(work, 'asm-cni.tar');
if (!process.env.ASM_IMAGE_ARCHIVE) {
  execFileSync('bash', [join(repoRoot, 'test/image/build.sh'), archive, 'asm-cni:test'], { stdio: 'inherit' });
}

// A docker-archive: manifest.json names the config and the layers in order.
const unpacked = join(work, 'archive');
const rootfs = join(work, 'rootfs');
execFileSync('mkdir', ['-p', unpacked, rootfs]);
execFileSync('tar', ['-xf', archive, '-C', unpacked]);
const [manifest] = JSON.parse(readFileSync(join(unpacked, 'manifest.json'), 'utf8'));
for (const layer of manifest.Layers as string[]) execFileSync('tar', ['-xf', join(unpacked, layer), '-C', rootfs]);
const config = JSON.parse(readFileSync(join(unpacked, manifest.Config), 'utf8')).config;

const inImage = (cmd: string[], env: string[] = config.Env) =>
  spawnSync('chroot', [rootfs, 'env', '-i', ...env, ...cmd], { encoding: 'utf8', cwd: '/' });

const docs = (file: string) =>
  readFileSync(join(repoRoot, 'manifests/base', file), 'utf8')
    .split(/^---$/m)
    .map((d) => parseYaml(d))
    .filter(Boolean);
const deployment = docs('webhook-deployment.yaml').find((d: any) => d.kind === 'Deployment');
const daemonset = docs('installer-daemonset.yaml').find((d: any) => d.kind === 'DaemonSet');

t.test('the default user and command are the ones the manifests rely on', async (t) => {
  t.equal(config.User, '10001:10001', 'non-root by default (runAsNonRoot can check a numeric user)');
  t.equal(config.User.split(':')[0], String(deployment.spec.template.spec.securityContext.runAsUser));
  t.same(config.Cmd, deployment.spec.template.spec.containers[0].command);
});

t.test('what the manifests start exists in the image', async (t) => {
  for (const c of [...deployment.spec.template.spec.containers, ...daemonset.spec.template.spec.containers]) {
    const script = (c.command as string[]).find((a) => a.startsWith('/app/'));
    if (script) t.ok(existsSync(join(rootfs, script)), `${c.name}: ${script}`);
  }
  const plugin = daemonset.spec.template.spec.containers[0].env.find((e: any) => e.name === 'ASM_PLUGIN_BINARY').value;
  t.ok(existsSync(join(rootfs, plugin)), `the plugin the installer copies: ${plugin}`);
});

t.test('the binaries run inside the image', async (t) => {
  const plugin = inImage(['/opt/asm-cni/asm-cni', 'version']);
  t.equal(plugin.status, 0, plugin.stderr);
  t.match(plugin.stdout, /^asm-cni \S+/);
  const crictl = inImage(['/opt/asm-cni/crictl', '--version']);
  t.equal(crictl.status, 0, crictl.stderr);
  for (const ipt of ['iptables-nft-save', 'iptables-legacy-save']) {
    t.ok(existsSync(join(rootfs, 'usr/sbin', ipt)), `${ipt} for the node audit`);
  }
  const webhook = inImage(['node', '/app/dist/webhook/server/cli.js', '--help']);
  t.equal(webhook.status, 0, webhook.stderr);
  t.match(webhook.stdout + webhook.stderr, /serve/);
  const installer = inImage(['node', '/app/dist/installer/cli.js', '--help']);
  t.equal(installer.status, 0, installer.stderr);
  t.match(installer.stdout + installer.stderr, /once|run/);
  const mutate = spawnSync(
    'chroot',
    [rootfs, 'env', '-i', ...config.Env, 'node', '/app/dist/webhook/server/cli.js', 'mutate', '-f', '-'],
    {
      encoding: 'utf8',
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'd' }, spec: {} }),
    },
  );
  t.equal(mutate.status, 0, `production dependencies load: ${mutate.stderr}`);
});
