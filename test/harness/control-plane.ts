// A throwaway control plane on loopback: etcd + kube-apiserver with RBAC, token authentication (an admin in
// system:masters and a limited user "dev" in no group with rights), PodSecurity and MutatingAdmissionWebhook on, and
// service-account keys made with openssl. Unless a controller-manager runs beside it (the cluster tier,
// test/harness/cluster.ts), the harness does the jobs of it the tests need: the `default` ServiceAccount and the
// `kube-root-ca.crt` ConfigMap of each test namespace, and filling the aggregated ClusterRoles (admin/edit/view).
import { mkdtempSync, writeFileSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startProcess, logTail, onExitCleanup, run, runOk, type Managed, type RunResult } from './proc.js';
import { freePorts, httpsGet } from './net.js';
import { waitFor } from './wait.js';
import { binPath } from './toolchain.js';

export type Who = 'admin' | 'dev';

export interface ControlPlane {
  readonly dir: string;
  readonly url: string;
  readonly port: number;
  readonly caFile: string;
  readonly caPem: string;
  readonly tokens: Record<Who, string>;
  readonly kubeconfigs: Record<Who, string>;
  /** kubectl as a user (admin by default); never throws on a non-zero exit. */
  kubectl(
    args: string[],
    opts?: { as?: Who; kubeconfig?: string; input?: string; timeoutMs?: number },
  ): Promise<RunResult>;
  /** kubectl that must succeed; returns stdout. */
  kubectlOk(args: string[], opts?: { as?: Who; kubeconfig?: string; input?: string }): Promise<string>;
  /** kubectl ... -o json, parsed. */
  getJson<T = any>(args: string[], opts?: { as?: Who }): Promise<T>;
  /** Creates a uniquely named namespace with its default ServiceAccount; `devEdit` binds user dev to ClusterRole edit there. */
  namespace(
    prefix: string,
    opts?: { labels?: Record<string, string>; devEdit?: boolean; name?: string },
  ): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

export function kubeconfigYaml(server: string, caPem: string, user: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: e2e',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${ca}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    `- name: ${user}@e2e`,
    '  context:',
    '    cluster: e2e',
    `    user: ${user}`,
    `current-context: ${user}@e2e`,
    '',
  ].join('\n');
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await runOk('openssl', args, { cwd: dir });
}

/**
 * A CA and a serving certificate for 127.0.0.1 and `extraIps` (ECDSA P-256: fast to make), plus an RSA
 * service-account key pair.
 */
async function makePki(dir: string, extraIps: string[]): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=asm-cni-e2e-ca',
  ]);
  await openssl(dir, [
    'req',
    ...ec,
    '-keyout',
    'apiserver.key',
    '-out',
    'apiserver.csr',
    '-subj',
    '/CN=kube-apiserver',
  ]);
  writeFileSync(
    join(dir, 'apiserver.ext'),
    `subjectAltName=${['IP:127.0.0.1', ...extraIps.map((ip) => `IP:${ip}`), 'DNS:localhost', 'DNS:kubernetes.default.svc'].join(',')}\n` +
      'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n',
  );
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    'apiserver.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'apiserver.crt',
    '-days',
    '2',
    '-extfile',
    'apiserver.ext',
  ]);
  await openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  await openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

const token = (): string => randomBytes(24).toString('hex');

export interface ControlPlaneOptions {
  /** More kube-apiserver flags (the node tier adds --kubelet-preferred-address-types=InternalIP). */
  apiserverArgs?: string[];
  /** An AuthorizationConfiguration file (--authorization-config) instead of --authorization-mode=RBAC. */
  authorizationConfig?: string;
  /**
   * A control plane a node's pods reach (the cluster tier): kube-apiserver listens on every address of its (private)
   * network namespace and advertises `address`, so the `kubernetes` Service's endpoint is that address (it cannot be
   * a loopback one); Services get ClusterIPs from `serviceCidr`, and the certificate names `clusterIp` (the
   * `kubernetes` Service's) for in-cluster clients.
   */
  node?: { address: string; serviceCidr: string; clusterIp: string };
  /** A controller-manager runs: namespace() waits for the ServiceAccount and ConfigMap it makes instead of making them. */
  controllers?: boolean;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'asm-cni-e2e-'));
  const removeDir =
    process.env.ASM_E2E_KEEP === '1'
      ? () => process.stderr.write(`e2e: kept ${dir}\n`)
      : onExitCleanup(`dir:${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const procs: Managed[] = [];
  // Throwaway processes: a short grace, all at once.
  const stopAll = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.stop(2000)));
  };
  try {
    const withControllers = !!opts.controllers;
    await makePki(dir, opts.node ? [opts.node.address, opts.node.clusterIp] : []);
    const tokens: Record<Who, string> = { admin: token(), dev: token() };
    writeFileSync(
      join(dir, 'tokens.csv'),
      `${tokens.admin},admin,uid-admin,system:masters\n${tokens.dev},dev,uid-dev,e2e-developers\n`,
      {
        mode: 0o600,
      },
    );

    const [etcdClient, etcdPeer, apiPort] = (await freePorts(3)) as [number, number, number];
    mkdirSync(join(dir, 'etcd'), { mode: 0o700 });
    const etcd = startProcess(
      'etcd',
      binPath('etcd'),
      [
        '--name',
        'e2e',
        '--data-dir',
        join(dir, 'etcd'),
        '--listen-client-urls',
        `http://127.0.0.1:${etcdClient}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${etcdClient}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${etcdPeer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${etcdPeer}`,
        '--initial-cluster',
        `e2e=http://127.0.0.1:${etcdPeer}`,
        '--unsafe-no-fsync', // throwaway data: no need to wait for the disk
        '--log-level',
        'warn',
      ],
      { logFile: join(dir, 'etcd.log') },
    );
    procs.push(etcd);

    const url = `https://127.0.0.1:${apiPort}`;
    const apiserver = startProcess(
      'kube-apiserver',
      binPath('kube-apiserver'),
      [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        `--bind-address=${opts.node ? '0.0.0.0' : '127.0.0.1'}`,
        `--advertise-address=${opts.node?.address ?? '127.0.0.1'}`,
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        opts.authorizationConfig ? `--authorization-config=${opts.authorizationConfig}` : '--authorization-mode=RBAC',
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--anonymous-auth=false',
        '--enable-admission-plugins=PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        // A documentation range. Without opts.node: stored data only (nothing routes it), and no `kubernetes`
        // Endpoints (a loopback advertise address cannot be one; nothing needs it).
        `--service-cluster-ip-range=${opts.node?.serviceCidr ?? '198.51.100.0/24'}`,
        ...(opts.node ? [] : ['--endpoint-reconciler-type=none']),
        '--profiling=false',
        '--v=1',
        ...(opts.apiserverArgs ?? []),
      ],
      { logFile: join(dir, 'kube-apiserver.log') },
    );
    procs.push(apiserver);

    const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const exitedReason = (): string | undefined => {
      for (const p of [etcd, apiserver]) if (p.hasExited()) return `${p.name} exited early:\n${logTail(p.logFile)}`;
      return undefined;
    };
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        const r = await httpsGet(`${url}/readyz`, { ca: caPem, token: tokens.admin });
        return r.status === 200 ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, abort: exitedReason },
    );

    const kubeconfigs: Record<Who, string> = {
      admin: join(dir, 'admin.kubeconfig'),
      dev: join(dir, 'dev.kubeconfig'),
    };
    for (const who of ['admin', 'dev'] as const) {
      writeFileSync(kubeconfigs[who], kubeconfigYaml(url, caPem, who, tokens[who]), { mode: 0o600 });
    }

    const kubectl: ControlPlane['kubectl'] = (args, opts = {}) =>
      run(binPath('kubectl'), ['--kubeconfig', opts.kubeconfig ?? kubeconfigs[opts.as ?? 'admin'], ...args], {
        input: opts.input,
        timeoutMs: opts.timeoutMs ?? 60_000,
        env: { ...process.env, KUBECONFIG: '' },
      });
    const kubectlOk: ControlPlane['kubectlOk'] = async (args, opts = {}) => {
      const r = await kubectl(args, opts);
      if (r.code !== 0)
        throw new Error(`kubectl ${args.join(' ')} (as ${opts.as ?? 'admin'}) exited ${r.code}: ${r.stderr.trim()}`);
      return r.stdout;
    };
    const getJson: ControlPlane['getJson'] = async (args, opts = {}) =>
      JSON.parse(await kubectlOk([...args, '-o', 'json'], opts));

    const cp: ControlPlane = {
      dir,
      url,
      port: apiPort,
      caFile: join(dir, 'ca.crt'),
      caPem,
      tokens,
      kubeconfigs,
      kubectl,
      kubectlOk,
      getJson,
      async namespace(prefix, opts = {}) {
        const name = opts.name ?? `${prefix}-${randomBytes(3).toString('hex')}`;
        const labels = Object.entries(opts.labels ?? {}).map(([k, v]) => `${k}: "${v}"`);
        const exists = (await kubectl(['get', 'namespace', name])).code === 0;
        if (!exists) {
          await kubectlOk(['create', '-f', '-'], {
            input: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n  labels: {${labels.join(', ')}}\n`,
          });
        }
        if (withControllers) {
          await waitNamespaceReady(kubectl, name);
          if (opts.devEdit)
            await kubectlOk(['create', 'rolebinding', 'dev-edit', '--clusterrole=edit', '--user=dev', '-n', name]);
          return name;
        }
        // The controller-manager's ServiceAccount controller would do this; pods need it (ServiceAccount admission).
        const sa = await kubectl(['create', 'serviceaccount', 'default', '-n', name]);
        if (sa.code !== 0 && !/AlreadyExists/.test(sa.stderr))
          throw new Error(`creating default ServiceAccount in ${name}: ${sa.stderr}`);
        // And the root-CA publisher's: the CA every pod's service-account token volume mounts.
        const ca = await kubectl([
          'create',
          'configmap',
          'kube-root-ca.crt',
          '-n',
          name,
          `--from-file=ca.crt=${join(dir, 'ca.crt')}`,
        ]);
        if (ca.code !== 0 && !/AlreadyExists/.test(ca.stderr))
          throw new Error(`creating ConfigMap kube-root-ca.crt in ${name}: ${ca.stderr}`);
        if (opts.devEdit)
          await kubectlOk(['create', 'rolebinding', 'dev-edit', '--clusterrole=edit', '--user=dev', '-n', name]);
        return name;
      },
      logs: () =>
        `--- etcd ---\n${logTail(etcd.logFile, 20)}\n--- kube-apiserver ---\n${logTail(apiserver.logFile, 60)}`,
      async stop() {
        await stopAll();
        removeDir();
      },
    };
    // With a controller-manager its clusterrole-aggregation controller does this.
    if (!opts.controllers) await aggregateClusterRoles(cp);
    return cp;
  } catch (err) {
    const tails = procs.map((p) => `--- ${p.name} ---\n${logTail(p.logFile)}`).join('\n');
    await stopAll();
    removeDir();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${tails}`, { cause: err });
  }
}

/** Waits until the controller-manager made the namespace's default ServiceAccount and root-CA ConfigMap. */
async function waitNamespaceReady(kubectl: ControlPlane['kubectl'], ns: string): Promise<void> {
  await waitFor(
    `the default ServiceAccount and kube-root-ca.crt in ${ns} (made by the controller-manager)`,
    async () =>
      (await kubectl(['get', 'serviceaccount/default', 'configmap/kube-root-ca.crt', '-n', ns])).code === 0
        ? true
        : undefined,
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

interface ClusterRole {
  metadata: { name: string; labels?: Record<string, string> };
  aggregationRule?: { clusterRoleSelectors?: Array<{ matchLabels?: Record<string, string> }> };
  rules?: unknown[] | null;
}

/**
 * The clusterrole-aggregation controller's job (it lives in the controller-manager, which does not run here): fill the
 * rules of admin/edit/view from the ClusterRoles their aggregationRule selects, so "holding the edit role" means what
 * it means in a cluster.
 */
async function aggregateClusterRoles(cp: ControlPlane): Promise<void> {
  const list = await cp.getJson<{ items: ClusterRole[] }>(['get', 'clusterroles']);
  const byName = new Map(list.items.map((r) => [r.metadata.name, r]));
  const resolve = (role: ClusterRole, seen: Set<string>): unknown[] => {
    if (!role.aggregationRule) return role.rules ?? [];
    const out: unknown[] = [];
    for (const sel of role.aggregationRule.clusterRoleSelectors ?? []) {
      const ml = Object.entries(sel.matchLabels ?? {});
      for (const r of list.items) {
        if (r.metadata.name === role.metadata.name || seen.has(r.metadata.name)) continue;
        if (!ml.every(([k, v]) => r.metadata.labels?.[k] === v)) continue;
        seen.add(r.metadata.name);
        for (const rule of resolve(r, seen))
          if (!out.some((o) => JSON.stringify(o) === JSON.stringify(rule))) out.push(rule);
      }
    }
    return out;
  };
  for (const name of ['view', 'edit', 'admin']) {
    const role = byName.get(name);
    if (!role?.aggregationRule || (role.rules && role.rules.length > 0)) continue;
    const rules = resolve(role, new Set([name]));
    await cp.kubectlOk(['patch', 'clusterrole', name, '--type=merge', '-p', JSON.stringify({ rules })]);
  }
}
