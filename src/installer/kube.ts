// The installer's own API access (TokenRequest for the plugin's identity, pod repair), from its service-account dir.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

/** A client config authenticating with the projected token in `saDir` (re-read as it rotates, like in-cluster config). */
export function installerKubeConfig(server: string, saDir: string): KubeConfig {
  const kc = new KubeConfig();
  const caFile = path.join(saDir, 'ca.crt');
  // client-node refuses a plain http:// server (e.g. `kubectl proxy` in development) unless told there is no TLS to check.
  const plainHttp = server.startsWith('http://');
  kc.loadFromOptions({
    clusters: [
      { name: 'cluster', server, skipTLSVerify: plainHttp, ...(existsSync(caFile) && !plainHttp ? { caFile } : {}) },
    ],
    users: [
      { name: 'installer', authProvider: { name: 'tokenFile', config: { tokenFile: path.join(saDir, 'token') } } },
    ],
    contexts: [{ name: 'installer', cluster: 'cluster', user: 'installer' }],
    currentContext: 'installer',
  });
  return kc;
}
