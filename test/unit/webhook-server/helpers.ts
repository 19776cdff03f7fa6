// Shared by the webhook-server tests: certificates (made by certs/generate.sh), pods from Istio's goldens,
// AdmissionReview bodies, an in-memory log destination and an HTTPS client.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TLSSocket } from 'node:tls';
import { parseAllDocuments } from 'yaml';
import { createLogger, type WebhookLogger } from '../../../src/common/logging.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export { oraclesDir as oracleRoot } from '../../harness/oracles.js';
import { oraclesDir as oracleRoot } from '../../harness/oracles.js';
import { makeLeaf } from '../../harness/certs.js';
const classic = path.join(oracleRoot, 'inject', 'classic-1.26.8');

export const haveOpenssl = (): boolean => spawnSync('openssl', ['version']).status === 0;
export const haveOracles = (): boolean => existsSync(path.join(classic, 'hello.yaml.injected'));

/** A temp dir removed when the test process exits (each tap file is a process of its own). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `asm-ws-${prefix}-`));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface CertSet {
  dir: string;
  ca: Buffer;
  caKeyFile: string;
  cert: string;
  key: string;
}

/** Runs certs/generate.sh into dir (a new CA and serving cert each time, thanks to --force). */
export function generateCerts(dir: string, extra: string[] = []): CertSet {
  const r = spawnSync('bash', [path.join(repoRoot, 'certs/generate.sh'), '--out', dir, '--force', ...extra], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`generate.sh failed: ${r.stderr}`);
  return {
    dir,
    ca: readFileSync(path.join(dir, 'ca.crt')),
    caKeyFile: path.join(dir, 'ca.key'),
    cert: path.join(dir, 'tls.crt'),
    key: path.join(dir, 'tls.key'),
  };
}

/** A client certificate (clientAuth) signed by the CA of a CertSet. */
export async function clientCert(set: CertSet, dir: string): Promise<{ cert: Buffer; key: Buffer }> {
  const ca = { certFile: path.join(set.dir, 'ca.crt'), keyFile: set.caKeyFile };
  const leaf = await makeLeaf(dir, ca, 'kube-apiserver', 'client');
  return { cert: Buffer.from(leaf.cert), key: Buffer.from(leaf.key) };
}

export { AtomicDir } from '../../harness/atomic-volume.js';

/** Pod template of a Deployment golden, as the API server would send it on CREATE. */
export function goldenPod(file: string): Record<string, unknown> {
  const doc = parseAllDocuments(readFileSync(path.join(classic, file), 'utf8'))[0]!.toJS() as {
    spec: { template: { metadata: Record<string, unknown>; spec: Record<string, unknown> } };
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...doc.spec.template.metadata, generateName: 'hello-' },
    spec: doc.spec.template.spec,
  };
}

let uidCounter = 0;
export function review(object: unknown, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${process.pid}-${++uidCounter}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'team-a',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      oldObject: null,
      dryRun: false,
      ...over,
    },
  };
}

/** A minimal meshed pod (istio-init + app + istio-proxy) for tests that do not need a golden. */
export function meshedPod(name = 'web'): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      annotations: { 'sidecar.istio.io/status': '{"initContainers":["istio-init"],"containers":["istio-proxy"]}' },
    },
    spec: {
      initContainers: [
        {
          name: 'istio-init',
          image: 'istio/proxyv2',
          args: [
            'istio-iptables',
            '-p',
            '15001',
            '-z',
            '15006',
            '-u',
            '1337',
            '-m',
            'REDIRECT',
            '-i',
            '*',
            '-x',
            '',
            '-b',
            '*',
            '-d',
            '15090,15021,15020',
          ],
          securityContext: {
            capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
            runAsUser: 0,
            runAsGroup: 0,
            runAsNonRoot: false,
          },
        },
      ],
      containers: [
        { name: 'app', image: 'nginx' },
        { name: 'istio-proxy', image: 'istio/proxyv2', securityContext: { runAsUser: 1337, runAsGroup: 1337 } },
      ],
    },
  };
}

/** Log lines captured in memory (JSON), for assertions on what the server logged. */
export function memoryLogger(level = 'info'): WebhookLogger & { lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({
    level,
    pretty: false,
    destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return Object.assign(log, { lines });
}

export interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  serial?: string;
  fingerprint?: string;
}

export function httpsRequest(
  port: number,
  opts: {
    method?: string;
    path?: string;
    body?: string;
    headers?: Record<string, string>;
    ca: Buffer | Buffer[];
    agent?: https.Agent | false;
    cert?: Buffer;
    key?: Buffer;
  },
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        method: opts.method ?? 'POST',
        path: opts.path ?? '/mutate',
        ca: opts.ca,
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        agent: opts.agent ?? false,
        headers: { 'content-type': 'application/json', ...opts.headers },
      },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            serial: peer?.serialNumber,
            fingerprint: peer?.fingerprint256,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export { eventually, sleep } from '../../harness/wait.js';

export function decodePatch(response: { patch?: string }): unknown[] {
  return response.patch ? (JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as unknown[]) : [];
}

/**
 * How to run a TypeScript entry point in a child process: this process's loader flags (tap runs tests through
 * ts-node), with tap's coverage switched off in the child (_TAPJS_PROCESSINFO_COVERAGE_=0; tap's spawn hook copies
 * its variables into children unless set). A child's partial coverage of a file replaced, rather than added to, the
 * in-process tests' coverage of that file in tap's report.
 */
export function tsChild(env: NodeJS.ProcessEnv = process.env): { execArgv: string[]; env: NodeJS.ProcessEnv } {
  const clean: NodeJS.ProcessEnv = { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' };
  delete clean.NODE_V8_COVERAGE;
  return { execArgv: process.execArgv, env: clean };
}
