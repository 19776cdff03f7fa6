// A small webhook that stands in for Istio's sidecar injector: on pod CREATE it adds what Istio's injection adds
// (istio-init, istio-proxy, the volumes, the status annotation and labels), taken from Istio's own golden for the
// same input. Like Istio's injector it leaves a pod alone that already carries `sidecar.istio.io/status`.
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { oraclePod, type Pod } from './pods.js';

const esc = (k: string): string => k.replace(/~/g, '~0').replace(/\//g, '~1');

export function injectionOps(pod: Pod): unknown[] {
  const injected = oraclePod('classic-1.26.8', 'hello.yaml.injected', 'x');
  const ops: unknown[] = [];
  const meta = pod.metadata;
  for (const field of ['annotations', 'labels'] as const) {
    const add = injected.metadata[field] ?? {};
    if (!meta[field]) ops.push({ op: 'add', path: `/metadata/${field}`, value: {} });
    for (const [k, v] of Object.entries(add)) ops.push({ op: 'add', path: `/metadata/${field}/${esc(k)}`, value: v });
  }
  const init = injected.spec.initContainers!.find((c) => c.name === 'istio-init')!;
  const proxy = injected.spec.containers.find((c) => c.name === 'istio-proxy')!;
  if (!pod.spec.initContainers) ops.push({ op: 'add', path: '/spec/initContainers', value: [init] });
  else ops.push({ op: 'add', path: '/spec/initContainers/0', value: init });
  ops.push({ op: 'add', path: '/spec/containers/-', value: proxy });
  const podVolumes = new Set(((pod.spec.volumes ?? []) as Array<{ name: string }>).map((v) => v.name));
  const volumes = ((injected.spec.volumes ?? []) as Array<{ name: string }>).filter((v) => !podVolumes.has(v.name));
  if (!pod.spec.volumes) ops.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const v of volumes) ops.push({ op: 'add', path: '/spec/volumes/-', value: v });
  return ops;
}

export interface FakeInjector {
  readonly url: string;
  calls: number;
  close(): Promise<void>;
}

export async function startFakeInjector(certDir: string): Promise<FakeInjector> {
  const state = { calls: 0 };
  const server = https.createServer(
    { cert: readFileSync(join(certDir, 'tls.crt')), key: readFileSync(join(certDir, 'tls.key')) },
    (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        state.calls++;
        let review: any;
        try {
          review = JSON.parse(body);
        } catch {
          res.writeHead(400).end('not JSON');
          return;
        }
        const pod = review.request?.object as Pod | undefined;
        const response: Record<string, unknown> = { uid: review.request?.uid, allowed: true };
        if (pod && !pod.metadata?.annotations?.['sidecar.istio.io/status']) {
          response.patchType = 'JSONPatch';
          response.patch = Buffer.from(JSON.stringify(injectionOps(pod))).toString('base64');
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const self: FakeInjector = {
    url: `https://127.0.0.1:${port}/inject`,
    get calls() {
      return state.calls;
    },
    set calls(v: number) {
      state.calls = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return self;
}

type Requirement = { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] };

/**
 * A MutatingWebhookConfiguration for the fake injector that selects pods the way Istio's own injector configuration
 * does (istio-sidecar-injector: namespace label istio-injection=enabled; namespace label istio.io/rev; pod label
 * sidecar.istio.io/inject=true; pod label istio.io/rev; a pod labelled sidecar.istio.io/inject=false is spared), and
 * additionally only in `namespace`, so test namespaces do not see each other's injectors.
 */
export function injectorConfig(name: string, url: string, caPem: string, namespace: string): string {
  const inNs: Requirement = { key: 'kubernetes.io/metadata.name', operator: 'In', values: [namespace] };
  const notOptedOut: Requirement = { key: 'sidecar.istio.io/inject', operator: 'NotIn', values: ['false'] };
  const noNsLabels: Requirement[] = [
    { key: 'istio-injection', operator: 'DoesNotExist' },
    { key: 'istio.io/rev', operator: 'DoesNotExist' },
  ];
  const selections: Array<[string, Requirement[], Requirement[]]> = [
    ['namespace', [{ key: 'istio-injection', operator: 'In', values: ['enabled'] }], [notOptedOut]],
    [
      'rev.namespace',
      [
        { key: 'istio.io/rev', operator: 'Exists' },
        { key: 'istio-injection', operator: 'DoesNotExist' },
      ],
      [notOptedOut],
    ],
    [
      'object',
      noNsLabels,
      [
        { key: 'sidecar.istio.io/inject', operator: 'In', values: ['true'] },
        { key: 'istio.io/rev', operator: 'DoesNotExist' },
      ],
    ],
    ['rev.object', noNsLabels, [{ key: 'istio.io/rev', operator: 'Exists' }, notOptedOut]],
  ];
  return JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: selections.map(([prefix, nsReqs, podReqs]) => ({
      name: `${prefix}.sidecar-injector.e2e.istio.io`,
      clientConfig: { url, caBundle: Buffer.from(caPem).toString('base64') },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
      namespaceSelector: { matchExpressions: [inNs, ...nsReqs] },
      objectSelector: { matchExpressions: podReqs },
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      failurePolicy: 'Fail',
      reinvocationPolicy: 'Never',
      timeoutSeconds: 10,
    })),
  });
}
