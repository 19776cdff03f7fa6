// The serving certificate: read from files, checked (parses, key matches, dates), served with TLS 1.2+ and AEAD
// ciphers only, and swapped into the running server with setSecureContext when the files change, so a Secret
// or cert-manager rotation needs no restart. A bad new pair never replaces a good one. Which certificate is served, and
// how long it and the CA that issued it have left, is reported (metrics, a warning log), so an admin knows when to
// renew and can see every replica switch.
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
  /**
   * PEM bundle holding the CA that issued the serving certificate (the Secret's ca.crt, which may list two CAs during
   * a rotation). Read only to report that CA's expiry: a problem with it is logged, never a reason to stop serving.
   */
  ca?: string;
}

/** Warn when the serving certificate or its CA has less than this left: cert-manager's renewBefore (720h). */
export const EXPIRY_WARNING_SECONDS = 30 * 86_400;
/** While below the threshold, the warning repeats this often (checked on every file poll). */
export const EXPIRY_WARNING_REPEAT_MS = 86_400_000;

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

/** What logs and metrics say about a certificate. fingerprint256 is openssl's `-fingerprint -sha256` format. */
export interface CertSummary {
  subject: string;
  serialNumber: string;
  fingerprint256: string;
  validTo: Date;
  validFrom: Date;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** The leaf certificate, for logs and the expiry metric. */
  leaf: CertSummary;
  /** The CA of TlsFiles.ca that issued the leaf, when one did. */
  issuer?: CertSummary;
  /** Why issuer is missing although TlsFiles.ca is set. */
  issuerProblem?: string;
}

const summary = (x: X509Certificate): CertSummary => ({
  subject: x.subject.replace(/\n/g, ', '),
  serialNumber: x.serialNumber,
  fingerprint256: x.fingerprint256,
  validFrom: new Date(x.validFrom),
  validTo: new Date(x.validTo),
});

const PEM_BEGIN = '-----BEGIN CERTIFICATE-----';
const PEM_END = '-----END CERTIFICATE-----';
/** The PEM certificate blocks of a bundle, in order (a linear scan; other PEM blocks and text are skipped). */
export function pemCertificates(text: string): string[] {
  const out: string[] = [];
  for (let at = text.indexOf(PEM_BEGIN); at >= 0; at = text.indexOf(PEM_BEGIN, at)) {
    const end = text.indexOf(PEM_END, at);
    if (end < 0) break;
    out.push(text.slice(at, end + PEM_END.length));
    at = end + PEM_END.length;
  }
  return out;
}

/** The certificate of the bundle that issued `leaf` (names match and its key verifies the signature). */
export function findIssuer(leaf: X509Certificate, bundle: Buffer): { issuer?: CertSummary; problem?: string } {
  const blocks = pemCertificates(bundle.toString('latin1'));
  if (blocks.length === 0) return { problem: 'it holds no PEM certificate' };
  for (const pem of blocks) {
    let ca: X509Certificate;
    try {
      ca = new X509Certificate(pem);
    } catch {
      continue; // one bad block does not hide a good one
    }
    if (leaf.checkIssued(ca) && leaf.verify(ca.publicKey)) return { issuer: summary(ca) };
  }
  return {
    problem: `none of its ${blocks.length} certificate(s) issued the serving certificate: a caBundle holding the same CAs refuses it`,
  };
}

function issuerOf(leaf: X509Certificate, caFile: string | undefined): Pick<TlsMaterial, 'issuer' | 'issuerProblem'> {
  if (caFile === undefined) return {};
  let bundle: Buffer;
  try {
    bundle = readPem(caFile, 'CA bundle');
  } catch (err) {
    return { issuerProblem: (err as Error).message };
  }
  const { issuer, problem } = findIssuer(leaf, bundle);
  return issuer ? { issuer } : { issuerProblem: `the CA bundle ${caFile}: ${problem}` };
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
  return { cert, key, ...(ca ? { ca } : {}), leaf: summary(x509), ...issuerOf(x509, files.ca) };
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

/** What the reloader compares to notice a change: the files' bytes (the issuer's CA bundle included). */
const digest = (m: { cert: Buffer; key: Buffer; ca?: Buffer; issuerCa?: Buffer }): string =>
  createHash('sha256')
    .update(m.cert)
    .update('\0')
    .update(m.key)
    .update('\0')
    .update(m.ca ?? '')
    .update('\0')
    .update(m.issuerCa ?? '')
    .digest('hex');

/** The CA bundle's bytes for the digest; unreadable counts as empty (it never blocks a reload). */
function readOptional(path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

export interface CertReloaderOptions {
  files: TlsFiles;
  logger: Logger;
  metrics: WebhookMetrics;
  /** Installs a new context into the running server (server.setSecureContext). */
  apply?: (options: SecureContextOptions) => void;
  /** The clock of the expiry warning (ms since the epoch); tests inject one. */
  now?: () => number;
  /** Warn when the certificate or its CA has less than this left (default EXPIRY_WARNING_SECONDS). */
  expiryWarningSeconds?: number;
}

/** Holds the pair in service and swaps in a changed one when it is valid. */
export class CertReloader {
  private material: TlsMaterial;
  private digest: string;
  /** The last refused files: a poll seeing them again is not a new failure. */
  private refusedDigest: string | undefined;
  apply: ((options: SecureContextOptions) => void) | undefined;
  private readonly now: () => number;
  /** When the expiry warning was last logged, per certificate fingerprint. */
  private readonly warnedAt = new Map<string, number>();

  /** Loads the initial pair; throws (TlsFileError) when it is unusable, since serving nothing is better than serving that. */
  constructor(private readonly opts: CertReloaderOptions) {
    this.now = opts.now ?? Date.now;
    this.material = loadTlsMaterial(opts.files);
    this.digest = digest({ ...this.material, issuerCa: readOptional(opts.files.ca) });
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
        issuerCa: readOptional(this.opts.files.ca),
      };
      seen = digest(raw);
      if (seen === this.digest || seen === this.refusedDigest) {
        // A spurious event or a poll: nothing new, but time passed.
        this.checkExpiry();
        return false;
      }
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
    this.digest = seen;
    this.refusedDigest = undefined;
    this.loaded('TLS certificate reloaded');
    return true;
  }

  /**
   * Logs a warning when the served certificate or its CA expires within the threshold (or has expired): once when it
   * is found, then at most every EXPIRY_WARNING_REPEAT_MS. Runs on every load and file poll.
   */
  checkExpiry(): void {
    const now = this.now();
    const limitMs = (this.opts.expiryWarningSeconds ?? EXPIRY_WARNING_SECONDS) * 1000;
    const { leaf, issuer } = this.material;
    for (const [what, c] of [
      ['TLS certificate', leaf],
      ['CA of the TLS certificate', issuer],
    ] as const) {
      if (c === undefined) continue;
      const leftMs = c.validTo.getTime() - now;
      if (leftMs >= limitMs) continue;
      const last = this.warnedAt.get(c.fingerprint256);
      if (last !== undefined && now - last < EXPIRY_WARNING_REPEAT_MS) continue;
      this.warnedAt.set(c.fingerprint256, now);
      const days = Math.floor(leftMs / 86_400_000);
      this.opts.logger.warn(
        {
          subject: c.subject,
          serial: c.serialNumber,
          notAfter: c.validTo.toISOString(),
          secondsLeft: Math.floor(leftMs / 1000),
        },
        leftMs <= 0
          ? `the ${what} has expired`
          : `the ${what} expires in ${days} days: renew it (docs/install.md, "Renewing the certificate")`,
      );
    }
  }

  private loaded(msg: string): void {
    const { leaf, issuer, issuerProblem } = this.material;
    this.opts.metrics.certReloads.inc();
    this.opts.metrics.certNotAfter.set(Math.floor(leaf.validTo.getTime() / 1000));
    this.opts.metrics.setServedCertificate({
      serial: leaf.serialNumber,
      sha256: leaf.fingerprint256,
      notAfter: leaf.validTo,
      ...(issuer
        ? { ca: { serial: issuer.serialNumber, sha256: issuer.fingerprint256, notAfter: issuer.validTo } }
        : {}),
    });
    this.opts.logger.info(
      {
        subject: leaf.subject,
        serial: leaf.serialNumber,
        sha256: leaf.fingerprint256,
        notAfter: leaf.validTo.toISOString(),
        ...(issuer ? { caSerial: issuer.serialNumber, caNotAfter: issuer.validTo.toISOString() } : {}),
        clientCa: Boolean(this.material.ca),
      },
      msg,
    );
    if (issuerProblem !== undefined)
      this.opts.logger.warn(
        { err: issuerProblem },
        'cannot tell the CA of the TLS certificate; its expiry is not reported',
      );
    this.checkExpiry();
  }
}
