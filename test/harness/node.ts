// A real Kubernetes node for the tests: Debian's containerd (CRI) and runc, and the kubelet built by
// test/e2e/toolchain.sh, registered with a control plane from control-plane.ts. Pods get their network from a CNI
// chain in a private conf dir (Debian's bridge + host-local on a documentation subnet, then whatever the installer
// adds), called by containerd exactly as on a cluster node.
//
// It must run inside the node tier's private network and mount namespace (test/node/run.sh makes it): the bridge,
// the kubelet's sysctl masks and everything containerd and runc write to /run stay there. All state lives in one temp
// dir; the kubelet's cgroups under a cgroup root named after it. stop() (and the exit hooks, and run.sh's sweep) remove
// all of it.
//
// Platform this is made for and checks: cgroup v1 with the cgroupfs driver, containerd 1.6's CRI (v1 API), runc.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ControlPlane } from './control-plane.js';
import { freePorts } from './net.js';
import { waitFor } from './wait.js';
import {
  logTail,
  onExitCleanup,
  recordForSweep,
  run,
  runOk,
  startProcess,
  type Managed,
  type RunResult,
} from './proc.js';
import { binPath } from './toolchain.js';
import { writeImageArchive, type ImageSpec } from './node-images.js';

/** Debian's CNI plugins (containernetworking-plugins). containerd 1.6 takes one bin dir: they are linked into it. */
export const DEBIAN_CNI_DIR = '/usr/lib/cni';
const DEBIAN_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap'];
export const PAUSE_IMAGE = 'asm-cni.test/pause:1';
/** Pods' subnet on the node's bridge: a documentation range. */
export const POD_SUBNET = '198.51.100.0/24';
/** The sysctls kubelet 1.35 sets at start, with the values it wants; masked in this mount namespace only. */
const KUBELET_SYSCTLS: Record<string, string> = {
  'vm/overcommit_memory': '1',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
};

export interface PodRef {
  namespace: string;
  name: string;
}

export interface CriContainer {
  id: string;
  podSandboxId: string;
  state: string;
  metadata: { name: string; attempt?: number };
  labels: Record<string, string>;
}

export interface KubeNode {
  readonly name: string;
  readonly ip: string;
  readonly dir: string;
  /** The runtime's CNI conf dir and bin dir (the installer's --net-dir and --bin-dir). */
  readonly netDir: string;
  readonly binDir: string;
  /** The primary CNI's conflist in netDir, and the bytes it was written with. */
  readonly primaryConflist: string;
  readonly primaryBytes: string;
  readonly socket: string;
  /** The crictl binary (for tools that run it themselves with --cri-endpoint). */
  readonly crictlPath: string;
  /** crictl against this node's containerd; never throws on a non-zero exit. */
  crictl(args: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  crictlJson<T = any>(args: string[]): Promise<T>;
  /** Imports a stand-in image under the name a pod references. */
  importImage(spec: ImageSpec): Promise<void>;
  /** What the scheduler does: binds a pending pod to this node. */
  bind(pod: PodRef): Promise<void>;
  /** Containers of a pod as the runtime sees them (all states), newest attempt first. */
  containers(pod: PodRef, container?: string): Promise<CriContainer[]>;
  /** The host PID of a running container of the pod (the documented crictl inspect step). */
  containerPid(pod: PodRef, container: string): Promise<number>;
  /** The pod's sandboxes (ready or not). */
  sandboxes(pod: PodRef): Promise<Array<{ id: string; state: string; createdAt: string }>>;
  /** The path of a sandbox's network namespace pin (crictl inspectp). */
  sandboxNetns(sandboxId: string): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

export interface NodeOptions {
  cp: ControlPlane;
  /** The stand-in binary (test/node/images/build.sh); pause is imported at start. */
  standin: string;
  crictl: string;
  name?: string;
}

export const insideNodeNamespace = (): boolean => process.env.ASM_NODE_INSIDE === '1' && !!process.env.ASM_NODE_IP;

export async function startNode(opts: NodeOptions): Promise<KubeNode> {
  if (!insideNodeNamespace())
    throw new Error('startNode() runs only inside the private namespaces of test/node/run.sh (ASM_NODE_INSIDE)');
  const ip = process.env.ASM_NODE_IP!;
  const name = opts.name ?? `asm-node-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'asm-cni-node-'));
  const cgroupRoot = `/${name}`;
  const procs: Managed[] = [];
  const sub = (...p: string[]): string => {
    const d = join(dir, ...p);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const socket = join(dir, 'containerd', 'containerd.sock');
  const removeAll = onExitCleanup(`dir:${dir}`, () => cleanupSync(dir, cgroupRoot, socket));
  makeCgroupRoot(cgroupRoot);
  recordForSweep('shims', socket);
  recordForSweep('cgroup', cgroupRoot);

  const netDir = sub('etc', 'cni', 'net.d');
  const binDir = sub('opt', 'cni', 'bin');
  for (const p of DEBIAN_PLUGINS) symlinkSync(join(DEBIAN_CNI_DIR, p), join(binDir, p));
  const primaryConflist = join(netDir, '10-asm-node.conflist');
  const primaryBytes = `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'asm-node-pods',
      plugins: [
        {
          type: 'bridge',
          bridge: 'asm-br0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_SUBNET }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: sub('ipam'),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;
  writeFileSync(primaryConflist, primaryBytes);

  const crictlConfig = join(dir, 'crictl.yaml');
  writeFileSync(
    crictlConfig,
    `runtime-endpoint: unix://${socket}\nimage-endpoint: unix://${socket}\ntimeout: 60\ndebug: false\n`,
  );
  const crictl: KubeNode['crictl'] = (args, o = {}) =>
    run(opts.crictl, ['--config', crictlConfig, ...args], { timeoutMs: o.timeoutMs ?? 120_000 });
  const crictlJson: KubeNode['crictlJson'] = async (args) => {
    const r = await crictl(args);
    if (r.code !== 0) throw new Error(`crictl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  const stopAll = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await p.stop(10_000);
  };
  try {
    maskKubeletSysctls(sub('sysctl-masks'));

    const containerdConfig = join(sub('containerd'), 'config.toml');
    writeFileSync(containerdConfig, containerdToml(dir, socket, netDir, binDir));
    const containerd = startProcess('containerd', 'containerd', ['--config', containerdConfig], {
      logFile: join(dir, 'containerd.log'),
    });
    procs.push(containerd);
    await waitFor(
      'containerd CRI',
      async () => ((await crictl(['info'], { timeoutMs: 10_000 })).code === 0 ? true : undefined),
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        abort: () => (containerd.hasExited() ? `containerd exited:\n${logTail(containerd.logFile, 10)}` : undefined),
      },
    );

    const importImage: KubeNode['importImage'] = async (spec) => {
      const archive = await writeImageArchive(sub('images', spec.name.replace(/[^\w.-]/g, '_')), opts.standin, spec);
      await runOk('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', archive], { timeoutMs: 300_000 });
    };
    await importImage({ name: PAUSE_IMAGE, entrypoint: ['pause'] });

    const [kubeletPort, healthzPort] = (await freePorts(2)) as [number, number];
    const kubeletConfig = join(dir, 'kubelet', 'config.yaml');
    sub('kubelet');
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, 'nameserver 127.0.0.1\n'); // pods get a resolver on loopback (none is needed)
    writeFileSync(
      kubeletConfig,
      kubeletYaml({
        socket,
        cgroupRoot,
        kubeletPort,
        healthzPort,
        resolvConf,
        podLogsDir: sub('pod-logs'),
        volumePluginDir: sub('volume-plugins'),
      }),
    );
    const kubelet = startProcess(
      'kubelet',
      binPath('kubelet'),
      [
        '--config',
        kubeletConfig,
        '--kubeconfig',
        opts.cp.kubeconfigs.admin,
        '--root-dir',
        sub('kubelet', 'root'),
        '--cert-dir',
        sub('kubelet', 'pki'),
        '--hostname-override',
        name,
        '--node-ip',
        ip,
        '--v=2',
      ],
      { logFile: join(dir, 'kubelet.log') },
    );
    procs.push(kubelet);
    await waitFor(
      `node ${name} Ready`,
      async () => {
        const r = await opts.cp.kubectl(['get', 'node', name, '-o', 'json']);
        if (r.code !== 0) return undefined;
        const node = JSON.parse(r.stdout);
        const ready = node.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
        return ready?.status === 'True' ? true : undefined;
      },
      {
        timeoutMs: 300_000,
        intervalMs: 1000,
        abort: () => (kubelet.hasExited() ? `kubelet exited:\n${logTail(kubelet.logFile, 10)}` : undefined),
      },
    );

    const podLabels = (pod: PodRef): string[] => [
      '--label',
      `io.kubernetes.pod.namespace=${pod.namespace}`,
      '--label',
      `io.kubernetes.pod.name=${pod.name}`,
    ];
    const containers: KubeNode['containers'] = async (pod, container) => {
      const out = await crictlJson<{ containers: CriContainer[] }>([
        'ps',
        '-a',
        '-o',
        'json',
        ...podLabels(pod),
        ...(container ? ['--name', `^${container}$`] : []),
      ]);
      return out.containers.sort((a, b) => (b.metadata.attempt ?? 0) - (a.metadata.attempt ?? 0));
    };

    const node: KubeNode = {
      name,
      ip,
      dir,
      netDir,
      binDir,
      primaryConflist,
      primaryBytes,
      socket,
      crictlPath: opts.crictl,
      crictl,
      crictlJson,
      importImage,
      async bind(pod) {
        const binding = {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name: pod.name, namespace: pod.namespace },
          target: { apiVersion: 'v1', kind: 'Node', name },
        };
        await opts.cp.kubectlOk(
          ['create', '--raw', `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}/binding`, '-f', '-'],
          {
            input: JSON.stringify(binding),
          },
        );
      },
      containers,
      async containerPid(pod, container) {
        const running = (await containers(pod, container)).find((c) => c.state === 'CONTAINER_RUNNING');
        if (!running) throw new Error(`no running container ${container} in ${pod.namespace}/${pod.name}`);
        const info = await crictlJson<{ info?: { pid?: number } }>(['inspect', '-o', 'json', running.id]);
        const pid = info.info?.pid;
        if (!pid) throw new Error(`crictl inspect ${running.id} shows no pid`);
        return pid;
      },
      async sandboxes(pod) {
        const out = await crictlJson<{ items: Array<{ id: string; state: string; createdAt: string }> }>([
          'pods',
          '-o',
          'json',
          '--namespace',
          pod.namespace,
          '--name',
          pod.name,
        ]);
        return out.items;
      },
      async sandboxNetns(id) {
        const out = await crictlJson<{
          info?: { runtimeSpec?: { linux?: { namespaces?: Array<{ type: string; path?: string }> } } };
        }>(['inspectp', '-o', 'json', id]);
        const path = out.info?.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
        if (!path) throw new Error(`crictl inspectp ${id} names no network namespace path`);
        return path;
      },
      logs: () =>
        `--- containerd ---\n${logTail(containerd.logFile, 40)}\n--- kubelet ---\n${logTail(kubelet.logFile, 60)}`,
      async stop() {
        // The kubelet first (it would restart what is removed), then every sandbox (containerd runs the CNI DEL
        // for each), then containerd; what is left after that is swept by the cleanup.
        await kubelet.stop(10_000);
        await crictl(['rmp', '-fa'], { timeoutMs: 300_000 });
        await stopAll();
        removeAll();
      },
    };
    return node;
  } catch (err) {
    const tails = procs.map((p) => `--- ${p.name} ---\n${logTail(p.logFile, 15)}`).join('\n');
    await stopAll();
    removeAll();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${tails}`, { cause: err });
  }
}

const CGROUP_FS = '/sys/fs/cgroup';
/** The cgroup v1 hierarchies mounted here (cpu, memory, the named systemd one, ...), as dirs of the node's root. */
function cgroupDirs(cgroupRoot: string): string[] {
  return readdirSync(CGROUP_FS)
    .filter((c) => existsSync(join(CGROUP_FS, c, 'cgroup.procs')))
    .map((c) => join(CGROUP_FS, c, cgroupRoot));
}

/** The kubelet wants its cgroup root to exist in every hierarchy; a new cpuset needs its cpus and mems filled. */
function makeCgroupRoot(cgroupRoot: string): void {
  for (const d of cgroupDirs(cgroupRoot)) {
    mkdirSync(d, { recursive: true });
    if (d.startsWith(`${CGROUP_FS}/cpuset/`))
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        writeFileSync(join(d, f), readFileSync(join(CGROUP_FS, 'cpuset', f), 'utf8'));
  }
}

/**
 * The kubelet writes these sysctls at start; on a shared test machine it must not. This mount namespace is private
 * (run.sh), so a file bind-mounted over each one, holding the value the kubelet wants, keeps the host's as they are.
 */
function maskKubeletSysctls(dir: string): void {
  for (const [key, want] of Object.entries(KUBELET_SYSCTLS)) {
    const target = `/proc/sys/${key}`;
    if (readFileSync(target, 'utf8').trim() === want) continue;
    const file = join(dir, key.replace('/', '.'));
    writeFileSync(file, `${want}\n`);
    execFileSync('mount', ['--bind', file, target]);
  }
}

function containerdToml(dir: string, socket: string, netDir: string, binDir: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${join(dir, 'containerd', 'root')}"
state = "${join(dir, 'containerd', 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'containerd', 'opt')}"

[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  # The sandbox's bounding set here lacks CAP_SYS_RESOURCE: without this every sandbox fails
  # ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  [${cri}.cni]
    bin_dir = "${binDir}"
    conf_dir = "${netDir}"
    max_conf_num = 1
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
`;
}

function kubeletYaml(o: {
  socket: string;
  cgroupRoot: string;
  kubeletPort: number;
  healthzPort: number;
  resolvConf: string;
  podLogsDir: string;
  volumePluginDir: string;
}): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://${o.socket}
# This machine: cgroup v1 (kubelet 1.35 refuses it unless told), the cgroupfs driver, swap may be on.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
cgroupRoot: ${o.cgroupRoot}
# Otherwise the kubelet adds KUBE-FIREWALL rules (in the tier's private network namespace, but never needed here).
makeIPTablesUtilChains: false
port: ${o.kubeletPort}
readOnlyPort: 0
healthzPort: ${o.healthzPort}
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
resolvConf: ${o.resolvConf}
podLogsDir: ${o.podLogsDir}
volumePluginDir: ${o.volumePluginDir}
# The imported stand-in images must never be garbage-collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 30
`;
}

/** Every mount point under dir, deepest first (kubelet volumes, container rootfs, netns pins). */
function mountsUnder(dir: string): string[] {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const points = lines.map((l) => l.split(' ')[4] ?? '').filter((p) => p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Last-resort synchronous cleanup: shims and container processes of this node, cgroups, mounts, the dir. */
function cleanupSync(dir: string, cgroupRoot: string, socket: string): void {
  const quiet = { stdio: 'ignore' as const };
  try {
    const pids = execFileSync('pgrep', ['-f', `containerd-shim.*-address ${socket}`], { encoding: 'utf8' });
    for (const pid of pids.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  } catch {
    /* none left */
  }
  const dirs = cgroupDirs(cgroupRoot).filter((d) => existsSync(d));
  for (const d of dirs) {
    try {
      const procs = execFileSync('find', [d, '-name', 'cgroup.procs', '-exec', 'cat', '{}', '+'], { encoding: 'utf8' });
      for (const pid of procs.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    } catch {
      /* nothing there */
    }
  }
  for (const d of dirs) {
    // A cgroup whose last process was just killed can stay busy for a moment: retried a few times.
    for (let i = 0; i < 20 && existsSync(d); i++) {
      try {
        execFileSync('find', [d, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', '+'], quiet);
      } catch {
        execFileSync('sleep', ['0.2']);
      }
    }
  }
  for (const m of mountsUnder(dir)) {
    try {
      execFileSync('umount', ['-l', m], quiet);
    } catch {
      /* already gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
