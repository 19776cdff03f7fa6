// One throwaway CA and serving certificate per bench run: both webhook servers present the same certificate and the
// plugin's fake API server presents it too, so TLS costs are identical on every side compared.
import { makeCA, makeLeaf } from '../../test/harness/certs.js';

export interface BenchCerts {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: Buffer;
}

export async function generateCerts(dir: string): Promise<BenchCerts> {
  const ca = await makeCA(dir, 'ca');
  const tls = await makeLeaf(dir, ca, 'tls', 'server');
  return { dir, caFile: ca.certFile, certFile: tls.certFile, keyFile: tls.keyFile, ca: Buffer.from(ca.cert) };
}
