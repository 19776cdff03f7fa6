// Test PKI made with the openssl CLI, for the unit tests, bench and soak: a CA, serving certificates (for rotation)
// and client certificates. P-256 keys: fast to make, and the same TLS cost on every side bench compares.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './proc.js';

export interface KeyPair {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as node's TLS peer certificate reports it */
  fingerprint: string;
}

const SERVER_SANS = 'DNS:localhost,IP:127.0.0.1,DNS:asm-cni-webhook.asm-cni.svc';

export async function makeCA(dir: string, name: string): Promise<KeyPair> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await runOk('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return load(certFile, keyFile);
}

/** A leaf signed by `ca`; `usage` picks serverAuth (with the loopback SANs) or clientAuth. */
export async function makeLeaf(
  dir: string,
  ca: Pick<KeyPair, 'certFile' | 'keyFile'>,
  name: string,
  usage: 'server' | 'client',
): Promise<KeyPair> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    usage === 'server'
      ? `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${SERVER_SANS}\n`
      : `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n`,
  );
  await runOk('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    keyFile,
    '-out',
    csr,
  ]);
  await runOk('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-set_serial',
    `0x${randomSerial()}`,
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    certFile,
  ]);
  return load(certFile, keyFile);
}

function randomSerial(): string {
  return Array.from({ length: 16 }, () => Math.floor(Math.random() * 16).toString(16))
    .join('')
    .replace(/^0/, '1');
}

function load(certFile: string, keyFile: string): KeyPair {
  const cert = readFileSync(certFile, 'utf8');
  return {
    certFile,
    keyFile,
    cert,
    key: readFileSync(keyFile, 'utf8'),
    fingerprint: new X509Certificate(cert).fingerprint256,
  };
}

/**
 * A new certificate for the CA key in keyFile with generate.sh's CA subject, serial and extensions, as cert-manager
 * renews a CA Certificate with rotationPolicy Never: certificates issued under the old one verify against it.
 */
export function reissueCA(keyFile: string, outFile: string, days: number): SpawnSyncReturns<string> {
  return spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-new',
      '-key',
      keyFile,
      '-sha256',
      '-days',
      String(days),
      '-subj',
      '/O=asm-cni/CN=asm-cni-webhook-ca',
      '-set_serial',
      '0x7e57ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-addext',
      'subjectKeyIdentifier=hash',
      '-out',
      outFile,
    ],
    { encoding: 'utf8' },
  );
}
