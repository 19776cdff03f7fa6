// The node-audit component (manifests/components/node-audit): a second container of the installer DaemonSet that
// runs `asm-cni audit`. Its command must use flags the Go CLI defines, its mounts must be where the flags point,
// it must hold exactly the capabilities docs/verify.md names, and the image must carry what it runs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from './helpers.js';

const dir = path.join(repoRoot, 'manifests', 'components', 'node-audit');
const component = parseYaml(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'));
const patch = parseYaml(readFileSync(path.join(dir, component.patches[0].path), 'utf8'));
const base = parseYaml(readFileSync(path.join(repoRoot, 'manifests', 'base', 'installer-daemonset.yaml'), 'utf8'));
const audit = patch.spec.template.spec.containers.find((c: any) => c.name === 'audit');
const volumes = new Map<string, any>(patch.spec.template.spec.volumes.map((v: any) => [v.name, v]));
const flag = (name: string): string | undefined =>
  (audit.command as string[]).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

t.test('a Component patching the installer DaemonSet by name', async (t) => {
  t.equal(component.kind, 'Component');
  t.same(
    [patch.kind, patch.metadata.name, patch.metadata.namespace],
    ['DaemonSet', base.metadata.name, base.metadata.namespace],
  );
  t.same(audit.command.slice(0, 2), ['/opt/asm-cni/asm-cni', 'audit']);
});

t.test("every flag of the command is one the Go CLI's audit command defines", async (t) => {
  const src = readFileSync(path.join(repoRoot, 'cni', 'internal', 'cli', 'audit.go'), 'utf8');
  const defined = new Set([...src.matchAll(/fs\.\w+Var\(&o\.\w+, "([a-z-]+)"/g)].map((m) => m[1]));
  t.ok(defined.size >= 7, 'the flag definitions were found');
  for (const arg of audit.command.slice(2) as string[]) {
    const name = /^--([a-z-]+)=/.exec(arg)?.[1];
    t.ok(name && defined.has(name), `${arg} is a flag of asm-cni audit`);
  }
});

t.test('the mounts are where the flags point, at host paths', async (t) => {
  const mount = (p: string) => audit.volumeMounts.find((m: any) => m.mountPath === p);
  const conf = mount(flag('cni-conf-dir')!);
  t.ok(conf?.readOnly, 'the CNI config dir is mounted read-only at the path the flag names');
  t.equal(
    volumes.get(conf.name).hostPath.path,
    flag('cni-conf-dir'),
    'at its host path: the conflist names host paths',
  );
  const socket = flag('cri-endpoint')!.replace(/^unix:\/\//, '');
  t.equal(volumes.get(mount(socket).name).hostPath.path, socket, 'the CRI socket');
  t.equal(volumes.get(mount('/run/netns').name).hostPath.path, '/var/run/netns', "containerd's pinned namespaces");
  t.equal(mount('/run/netns').mountPropagation, 'HostToContainer', 'namespaces pinned later are seen');
  t.ok(volumes.get(mount('/run').name).emptyDir, 'a writable /run for the xtables lock');
});

t.test('exactly the capabilities the docs name, never privileged', async (t) => {
  const sc = audit.securityContext;
  t.equal(sc.privileged, false);
  t.equal(sc.allowPrivilegeEscalation, false);
  t.same(sc.capabilities.drop, ['ALL']);
  t.same([...sc.capabilities.add].sort(), ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN']);
  const docs = readFileSync(path.join(repoRoot, 'docs', 'verify.md'), 'utf8');
  for (const c of sc.capabilities.add) t.match(docs, c, `docs/verify.md explains ${c}`);
});

t.test('the image carries the plugin, crictl and iptables', async (t) => {
  const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
  t.match(dockerfile, /COPY --from=plugin \/out\/crictl \/opt\/asm-cni\/crictl/);
  t.equal(flag('crictl'), '/opt/asm-cni/crictl');
  t.match(dockerfile, /apt-get install[^\n]*iptables/);
});
