// The kubeconfig the plugin uses to read pods: API server address, cluster CA and a token. Rendering is pure.
import { stringify } from 'yaml';

export const KUBECONFIG_FILE_NAME = 'asm-cni-kubeconfig';

export interface KubeconfigInput {
  server: string;
  /** PEM of the cluster CA; null means skip TLS verification (development clusters only). */
  caPem: string | null;
  token: string;
}

/** https://HOST:PORT with IPv6 literals bracketed; an error names the missing variable. */
export function apiServerUrl(host: string | undefined, port: string | undefined): string {
  if (!host) throw new Error('KUBERNETES_SERVICE_HOST is not set: not running in a cluster? pass --api-server');
  if (!port) throw new Error('KUBERNETES_SERVICE_PORT is not set: not running in a cluster? pass --api-server');
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `https://${bracketed}:${port}`;
}

export function renderKubeconfig(input: KubeconfigInput): string {
  const cluster: Record<string, unknown> =
    input.caPem === null
      ? { 'insecure-skip-tls-verify': true, server: input.server }
      : { 'certificate-authority-data': Buffer.from(input.caPem).toString('base64'), server: input.server };
  return stringify({
    apiVersion: 'v1',
    clusters: [{ cluster, name: 'local' }],
    contexts: [{ context: { cluster: 'local', user: 'asm-cni' }, name: 'asm-cni-context' }],
    'current-context': 'asm-cni-context',
    kind: 'Config',
    users: [{ name: 'asm-cni', user: { token: input.token } }],
  });
}
