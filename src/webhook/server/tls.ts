// The serving certificate: read from files, checked (parses, key matches, dates), served with TLS 1.2+ and AEAD
// ciphers only, and swapped into the running server with setSecureContext when the files change, so a Secret
// or cert-manager rotation needs no restart. A bad new pair never replaces a good one.
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from '../../common/logging.js';
import type { WebhookMetrics } from './metrics.js';

export interface TlsFiles {
  cert: string;
  key: string;
  /** PEM bundle of CAs whose client certificates are accepted; unset means no client certificate is asked for. */
  clientCa?: string;
}

/**
 * TLS 1.2 and 1.3 only. For 1.2, ECDHE key exchange with AEAD ciphers (Mozilla's "intermediate" list): what Go's
 * crypto/tls (the API server's client) prefers. TLS 1.3 suites are not configurable here and are all AEAD.
 */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export class TlsFileError extends Error {
  override name = 'TlsFileError';
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** The leaf certificate, for logs and the expiry metric. */
  leaf: { subject: string; serialNumber: string; fingerprint256: string; validTo: Date; validFrom: Date };
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new TlsFileError(`cannot read the ${what} ${path}: ${why}`);
  }
}

/** Reads and checks the files; throws a TlsFileError naming the file and the problem. */
export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const cert = readPem(files.cert, 'TLS certificate');
  const key = readPem(files.key, 'TLS private key');
  const ca = files.clientCa !== undefined ? readPem(files.clientCa, 'client CA bundle') : undefined;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsFileError(`the TLS certificate ${files.cert} is not a PEM certificate: ${(err as Error).message}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsFileError(`the TLS private key ${files.key} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsFileError(`the TLS private key ${files.key} does not match the certificate ${files.cert}`);
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new TlsFileError(
        `the client CA bundle ${files.clientCa} is not a PEM certificate: ${(err as Error).message}`,
      );
    }
  }
  return {
    cert,
    key,
    ...(ca ? { ca } : {}),
    leaf: {
      subject: x509.subject.replace(/\n/g, ', '),
      serialNumber: x509.serialNumber,
      fingerprint256: x509.fingerprint256,
      validFrom: new Date(x509.validFrom),
      validTo: new Date(x509.validTo),
    },
  };
}

export function secureContextOptions(m: TlsMaterial): SecureContextOptions {
  return {
    cert: m.cert,
    key: m.key,
    ...(m.ca ? { ca: m.ca } : {}),
    minVersion: TLS_MIN_VERSION,
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
  };
}

/** Options for the https server; with a client CA every connection must present a certificate it signed. */
export function httpsServerOptions(m: TlsMaterial): HttpsServerOptions {
  return {
    ...secureContextOptions(m),
    ...(m.ca ? { requestCert: true, rejectUnauthorized: true } : {}),
  };
}

const digest = (m: { cert: Buffer; key: Buffer; ca?: Buffer }): string =>
  createHash('sha256')
    .update(m.cert)
    .update('\0')
    .update(m.key)
    .update('\0')
    .update(m.ca ?? '')
    .digest('hex');

export interface CertReloaderOptions {
  files: TlsFiles;
  logger: Logger;
  metrics: WebhookMetrics;
  /** Installs a new context into the running server (server.setSecureContext). */
  apply?: (options: SecureContextOptions) => void;
}

/** Holds the pair in service and swaps in a changed one when it is valid. */
export class CertReloader {
  private material: TlsMaterial;
  private digest: string;
  /** The last refused files: a poll seeing them again is not a new failure. */
  private refusedDigest: string | undefined;
  apply: ((options: SecureContextOptions) => void) | undefined;

  /** Loads the initial pair; throws (TlsFileError) when it is unusable, since serving nothing is better than serving that. */
  constructor(private readonly opts: CertReloaderOptions) {
    this.material = loadTlsMaterial(opts.files);
    this.digest = digest(this.material);
    this.apply = opts.apply;
    this.loaded('TLS certificate loaded');
  }

  get current(): TlsMaterial {
    return this.material;
  }

  /** Re-reads the files; applies them if they changed and are valid. Returns true when a new pair went into service. */
  reload(): boolean {
    let next: TlsMaterial;
    let seen: string | undefined;
    try {
      const raw = {
        cert: readPem(this.opts.files.cert, 'TLS certificate'),
        key: readPem(this.opts.files.key, 'TLS private key'),
        ...(this.opts.files.clientCa ? { ca: readPem(this.opts.files.clientCa, 'client CA bundle') } : {}),
      };
      seen = digest(raw);
      if (seen === this.digest || seen === this.refusedDigest) return false; // a spurious event or a poll: nothing new
      next = loadTlsMaterial(this.opts.files);
      this.apply?.(secureContextOptions(next));
    } catch (err) {
      this.refusedDigest = seen;
      // Mid-rotation (a new certificate next to the old key) this fails once and succeeds on the next event.
      this.opts.metrics.certReloadFailures.inc();
      this.opts.logger.error(
        { err: (err as Error).message },
        'TLS certificate reload failed; still serving the previous certificate',
      );
      return false;
    }
    this.material = next;
    this.digest = digest(next);
    this.refusedDigest = undefined;
    this.loaded('TLS certificate reloaded');
    return true;
  }

  private loaded(msg: string): void {
    const leaf = this.material.leaf;
    this.opts.metrics.certReloads.inc();
    this.opts.metrics.certNotAfter.set(Math.floor(leaf.validTo.getTime() / 1000));
    this.opts.logger.info(
      {
        subject: leaf.subject,
        serial: leaf.serialNumber,
        notAfter: leaf.validTo.toISOString(),
        clientCa: Boolean(this.material.ca),
      },
      msg,
    );
    if (leaf.validTo.getTime() < Date.now())
      this.opts.logger.warn({ notAfter: leaf.validTo.toISOString() }, 'the TLS certificate has expired');
  }
}
