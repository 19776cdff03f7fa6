// The node tier's workloads: a Bookinfo-productpage-like Deployment, injected by Istio (its own golden injection
// output, with Istio 1.26.8's proxy image), and the ReplicaSet and Pod the controllers would make of it.
import { randomBytes } from 'node:crypto';
import type { ControlPlane, Who } from '../harness/control-plane.js';
import { oraclePod, type Pod } from '../harness/pods.js';
import type { ImageSpec } from '../harness/node-images.js';

export const PROXY_IMAGE = 'docker.io/istio/proxyv2:1.26.8';
export const APP_IMAGE = 'docker.io/istio/examples-bookinfo-productpage-v1:1.20.3';
export const APP_PORT = 9080;

/** The images the pods reference, as stand-ins (test/node/images/main.go, test-only). */
export const IMAGES: ImageSpec[] = [
  { name: PROXY_IMAGE, entrypoint: ['istio'] },
  { name: APP_IMAGE, entrypoint: ['app', String(APP_PORT)] },
];

/**
 * Istio's injection of its `hello` sample (classic shape, with istio-init), made productpage-like: the app container
 * `productpage` on 9080 with Bookinfo's labels; the proxy image as an Istio 1.26.8 install injects it (a tagged image:
 * `:latest` would make the kubelet pull from a registry this machine cannot reach).
 */
export function productpageTemplate(): Pod {
  const pod = oraclePod('classic-1.26.8', 'hello.yaml.injected', 'productpage');
  const labels = pod.metadata.labels ?? {};
  for (const k of ['tier', 'track']) delete labels[k];
  Object.assign(labels, {
    app: 'productpage',
    version: 'v1',
    'service.istio.io/canonical-name': 'productpage',
    'service.istio.io/canonical-revision': 'v1',
  });
  pod.metadata.labels = labels;
  const ann = pod.metadata.annotations ?? {};
  ann['kubectl.kubernetes.io/default-container'] = 'productpage';
  ann['kubectl.kubernetes.io/default-logs-container'] = 'productpage';
  for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) {
    if (c.name === 'hello') {
      c.name = 'productpage';
      c.image = APP_IMAGE;
      c.ports = [{ containerPort: APP_PORT, name: 'http' }];
    } else {
      c.image = PROXY_IMAGE;
    }
    const env = c.env as Array<{ name: string; value?: string }> | undefined;
    for (const e of env ?? []) {
      if (e.name === 'ISTIO_META_APP_CONTAINERS') e.value = 'productpage';
      if (e.name === 'ISTIO_META_WORKLOAD_NAME') e.value = 'productpage-v1';
      if (e.name === 'ISTIO_META_POD_PORTS') e.value = `[\n    {"name":"http","containerPort":${APP_PORT}}\n]`;
    }
  }
  return pod;
}

export interface Workload {
  deployment: string;
  replicaSet: string;
  pod: string;
}

/**
 * As `kubectl apply` of the Deployment plus what the deployment and ReplicaSet controllers (not running here) would
 * create: the ReplicaSet owned by the Deployment, and one Pod owned by the ReplicaSet. All created by `as`.
 */
export async function createWorkload(
  cp: ControlPlane,
  ns: string,
  template: Pod,
  as: Who,
  name = 'productpage-v1',
): Promise<Workload> {
  const selector = { matchLabels: { app: template.metadata.labels?.app ?? name } };
  const tmpl = {
    metadata: { labels: template.metadata.labels, annotations: template.metadata.annotations },
    spec: template.spec,
  };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: { replicas: 1, selector, template: tmpl },
  };
  const dep = JSON.parse(
    await cp.kubectlOk(['create', '-n', ns, '-f', '-', '-o', 'json'], { as, input: JSON.stringify(deployment) }),
  );
  const hash = randomBytes(4).toString('hex').slice(0, 8);
  const rsName = `${name}-${hash}`;
  const owner = (kind: string, o: { metadata: { name: string; uid: string } }, apiVersion: string) => [
    { apiVersion, kind, name: o.metadata.name, uid: o.metadata.uid, controller: true, blockOwnerDeletion: true },
  ];
  const replicaSet = {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: rsName, ownerReferences: owner('Deployment', dep, 'apps/v1') },
    spec: { replicas: 1, selector, template: tmpl },
  };
  const rs = JSON.parse(
    await cp.kubectlOk(['create', '-n', ns, '-f', '-', '-o', 'json'], { as, input: JSON.stringify(replicaSet) }),
  );
  const podName = `${rsName}-${randomBytes(3).toString('hex').slice(0, 5)}`;
  await createOwnedPod(cp, ns, template, podName, owner('ReplicaSet', rs, 'apps/v1'), as);
  return { deployment: name, replicaSet: rsName, pod: podName };
}

/** One more pod of the ReplicaSet, as its controller would make after a deletion. */
export async function createOwnedPod(
  cp: ControlPlane,
  ns: string,
  template: Pod,
  name: string,
  ownerReferences: unknown[],
  as: Who,
): Promise<void> {
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...structuredClone(template.metadata), name, ownerReferences },
    spec: structuredClone(template.spec),
  };
  await cp.kubectlOk(['create', '-n', ns, '-f', '-'], { as, input: JSON.stringify(pod) });
}

/** What istiod does for every namespace: publish its root certificate (ConfigMap istio-ca-root-cert) the proxy mounts. */
export async function publishIstioRootCert(cp: ControlPlane, ns: string): Promise<void> {
  await cp.kubectlOk(['create', 'configmap', 'istio-ca-root-cert', '-n', ns, `--from-file=root-cert.pem=${cp.caFile}`]);
}
