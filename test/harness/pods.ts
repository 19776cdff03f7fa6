// Pods for the scenarios, taken from Istio's own injection goldens (the shared oracles): a Deployment's pod template
// becomes a bare Pod, as the ReplicaSet controller would make it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { oraclesDir } from './oracles.js';

const ORACLE_DIR = join(oraclesDir, 'inject');

export type Shape = 'classic-1.26.8' | 'native-master';

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  restartPolicy?: string;
  securityContext?: { capabilities?: { add?: string[]; drop?: string[] }; [k: string]: unknown };
  [k: string]: unknown;
}
export interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec: { containers: Container[]; initContainers?: Container[]; volumes?: unknown[]; [k: string]: unknown };
  [k: string]: unknown;
}

function oracleFile(shape: Shape, file: string): string {
  try {
    return readFileSync(join(ORACLE_DIR, shape, file), 'utf8');
  } catch {
    throw new Error(`oracle file ${shape}/${file} not found under ${ORACLE_DIR} (set ASM_ORACLES)`);
  }
}

/** The pod of the first workload in an oracle file (`hello.yaml.injected`, ...), named `name`. */
export function oraclePod(shape: Shape, file: string, name: string): Pod {
  const docs = parseAllDocuments(oracleFile(shape, file))
    .map((d) => d.toJS())
    .filter((d) => d && typeof d === 'object');
  const w = docs[0];
  if (!w) throw new Error(`no document in ${shape}/${file}`);
  const template = w.kind === 'Pod' ? w : (w.spec?.template ?? w.spec?.jobTemplate?.spec?.template);
  const meta = template.metadata ?? {};
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      ...(meta.labels ? { labels: meta.labels } : {}),
      ...(meta.annotations ? { annotations: meta.annotations } : {}),
    },
    spec: structuredClone(template.spec),
  };
  return pod;
}

/** Istio's CNI-mode rendering of the same input (what the rewrite must produce), minus the documented network confound. */
export function oracleCniPod(shape: Shape, base: string, name: string): Pod {
  const pod = oraclePod(shape, `${base}.cni.injected`, name);
  if (pod.metadata.labels) delete pod.metadata.labels['topology.istio.io/network'];
  for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) {
    const env = c.env as Array<{ name: string }> | undefined;
    if (env) c.env = env.filter((e) => e.name !== 'ISTIO_META_NETWORK');
  }
  return pod;
}

export const allContainers = (pod: Pod): Container[] => [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
export const initNames = (pod: Pod): string[] => (pod.spec.initContainers ?? []).map((c) => c.name);

/** Every capability that any container adds. */
export const addedCapabilities = (pod: Pod): string[] =>
  allContainers(pod).flatMap((c) => c.securityContext?.capabilities?.add ?? []);

/** A plain pod with one container and no sidecar. */
export function plainPod(name: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'plain' } },
    spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
  };
}
